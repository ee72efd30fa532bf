/* SPDX-License-Identifier: MIT */
/*
 * test_db.c - unit tests of the PostgreSQL pool (db.c).
 *
 * Needs a server: set GROUPS_TEST_PG_CONNINFO to a libpq connection string
 * of a database the tests may create temporary tables in, e.g.
 *	GROUPS_TEST_PG_CONNINFO="host=/tmp/pg port=5432 dbname=postgres"
 * Without it the tests that need a server are skipped (with a message);
 * what needs none (an unreachable server, DB_PARAMS) always runs.  The real
 * PostgreSQL restart is covered by the e2e suite; here a connection is
 * killed with pg_terminate_backend, which looks the same to libpq.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bounds.h"
#include "db.h"
#include "log.h"

static const char *conninfo;

#define NEED_PG() do {							\
	if (conninfo == NULL) {						\
		print_message("GROUPS_TEST_PG_CONNINFO is not set: "	\
		    "skipped (needs a PostgreSQL server)\n");		\
		skip();							\
	}								\
} while (0)

/* value - the single value of a one-row result (caller PQclears r). */
static const char *
value(PGresult *r)
{
	assert_non_null(r);
	assert_int_equal(PQntuples(r), 1);
	return PQgetvalue(r, 0, 0);
}

static void
test_params_macro(void **state)
{
	/* DB_PARAMS expands to "count, array", NULL is SQL NULL */
	struct { int n; const char *const *v; } a = { DB_PARAMS("1", NULL,
	    "3") };
	struct { int n; const char *const *v; } none = { DB_NOPARAMS };

	(void)state;
	assert_int_equal(a.n, 3);
	assert_string_equal(a.v[0], "1");
	assert_null(a.v[1]);
	assert_string_equal(a.v[2], "3");
	assert_int_equal(none.n, 0);
	assert_null(none.v);
}

static void
test_unreachable(void **state)
{
	struct db_pool *p;

	(void)state;
	/* a socket directory that does not exist: fails at once */
	p = db_pool_new("host=/nonexistent-groups-test port=1 "
	    "connect_timeout=2", 2);
	assert_null(db_get(p));
	assert_int_equal(db_ping(p), -1);
	/* the failed connection went back: the pool is not exhausted */
	assert_null(db_get(p));
	assert_null(db_get(p));
	assert_null(db_pool_free(p));
	assert_null(db_pool_free(NULL));
}

static void
test_query_params(void **state)
{
	static const char inj[] = "x'); DROP TABLE pg_class; --";
	struct db_pool *p;
	struct db *d;
	PGresult *r;

	(void)state;
	NEED_PG();
	p = db_pool_new(conninfo, 2);
	d = db_get(p);
	assert_non_null(d);
	r = db_query(d, "SELECT $1::int + 1", DB_PARAMS("41"));
	assert_string_equal(value(r), "42");
	PQclear(r);
	/* values are data, never SQL */
	r = db_query(d, "SELECT $1::text", DB_PARAMS(inj));
	assert_string_equal(value(r), inj);
	PQclear(r);
	r = db_query(d, "SELECT $1::text IS NULL, $2::text",
	    DB_PARAMS(NULL, "caf\xc3\xa9"));
	assert_non_null(r);
	assert_string_equal(PQgetvalue(r, 0, 0), "t");
	assert_string_equal(PQgetvalue(r, 0, 1), "caf\xc3\xa9");
	PQclear(r);
	r = db_query(d, "SELECT 1 WHERE false", DB_NOPARAMS);
	assert_non_null(r);
	assert_int_equal(PQntuples(r), 0);
	PQclear(r);
	assert_int_equal(db_ping(p), 0);
	db_put(p, d);
	db_pool_free(p);
}

static void
test_errors_sqlstate(void **state)
{
	const char *many[DB_MAX_PARAMS + 1];
	struct db_pool *p;
	struct db *d;
	PGresult *r;
	size_t i;

	(void)state;
	NEED_PG();
	p = db_pool_new(conninfo, 1);
	d = db_get(p);
	assert_non_null(d);
	assert_string_equal(db_sqlstate(d), "");
	assert_null(db_query(d, "SELEC 1", DB_NOPARAMS));
	assert_string_equal(db_sqlstate(d), "42601");
	assert_null(db_query(d, "SELECT $1::int", DB_PARAMS("nope")));
	assert_string_equal(db_sqlstate(d), "22P02");
	assert_int_equal(db_exec(d, "CREATE TEMP TABLE t_err (k int "
	    "PRIMARY KEY)", DB_NOPARAMS), 0);
	assert_int_equal(db_exec(d, "INSERT INTO t_err VALUES (1)",
	    DB_NOPARAMS), 1);
	assert_int_equal(db_exec(d, "INSERT INTO t_err VALUES (1)",
	    DB_NOPARAMS), -1);
	assert_string_equal(db_sqlstate(d), "23505");
	/* a success clears it */
	r = db_query(d, "SELECT 1", DB_NOPARAMS);
	PQclear(r);
	assert_string_equal(db_sqlstate(d), "");
	/* too many parameters is refused before reaching the server */
	for (i = 0; i < NELEM(many); i++)
		many[i] = "1";
	assert_null(db_query(d, "SELECT 1", (int)NELEM(many), many));
	db_put(p, d);
	db_pool_free(p);
}

static void
test_exec_rows_and_transactions(void **state)
{
	struct db_pool *p;
	struct db *d;
	PGresult *r;

	(void)state;
	NEED_PG();
	/* one connection: the temporary table stays visible */
	p = db_pool_new(conninfo, 1);
	d = db_get(p);
	assert_non_null(d);
	assert_int_equal(db_exec(d, "CREATE TEMP TABLE t_tx (k text)",
	    DB_NOPARAMS), 0);
	assert_int_equal(db_exec(d, "INSERT INTO t_tx SELECT 'r' || g FROM "
	    "generate_series(1, 3) g", DB_NOPARAMS), 3);
	assert_int_equal(db_exec(d, "UPDATE t_tx SET k = k || $1 WHERE k <> "
	    "'r1'", DB_PARAMS("x")), 2);

	assert_int_equal(db_begin(d), 0);
	assert_int_equal(db_exec(d, "DELETE FROM t_tx", DB_NOPARAMS), 3);
	assert_int_equal(db_rollback(d), 0);
	r = db_query(d, "SELECT count(*) FROM t_tx", DB_NOPARAMS);
	assert_string_equal(value(r), "3");
	PQclear(r);

	assert_int_equal(db_begin(d), 0);
	assert_int_equal(db_exec(d, "INSERT INTO t_tx VALUES ($1)",
	    DB_PARAMS("r4")), 1);
	assert_int_equal(db_commit(d), 0);
	r = db_query(d, "SELECT count(*) FROM t_tx", DB_NOPARAMS);
	assert_string_equal(value(r), "4");
	PQclear(r);

	/* returned inside a transaction: rolled back by db_put */
	assert_int_equal(db_begin(d), 0);
	assert_int_equal(db_exec(d, "DELETE FROM t_tx", DB_NOPARAMS), 4);
	db_put(p, d);
	d = db_get(p);
	assert_non_null(d);
	r = db_query(d, "SELECT count(*) FROM t_tx", DB_NOPARAMS);
	assert_string_equal(value(r), "4");
	PQclear(r);
	/* and the connection is usable outside a transaction again */
	r = db_query(d, "SELECT current_setting('transaction_isolation')",
	    DB_NOPARAMS);
	assert_non_null(r);
	PQclear(r);
	db_put(p, d);
	db_pool_free(p);
}

struct getter {
	struct db_pool	*p;
	struct db	*d;
	int		 done;
	pthread_mutex_t	 mu;
};

static void *
getter_main(void *arg)
{
	struct getter *g = arg;
	struct db *d = db_get(g->p);

	pthread_mutex_lock(&g->mu);
	g->d = d;
	g->done = 1;
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

static int
getter_done(struct getter *g)
{
	int done;

	pthread_mutex_lock(&g->mu);
	done = g->done;
	pthread_mutex_unlock(&g->mu);
	return done;
}

static void
test_pool_waits_for_free_connection(void **state)
{
	struct getter g = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct db_pool *p;
	struct db *d;
	pthread_t t;
	int i;

	(void)state;
	NEED_PG();
	p = db_pool_new(conninfo, 1);
	d = db_get(p);
	assert_non_null(d);
	g.p = p;
	assert_int_equal(pthread_create(&t, NULL, getter_main, &g), 0);
	/* the only connection is out: the second caller must wait */
	for (i = 0; i < 10; i++) {
		usleep(20000);
		assert_false(getter_done(&g));
	}
	db_put(p, d);
	for (i = 0; i < 250 && !getter_done(&g); i++)
		usleep(20000);
	pthread_join(t, NULL);
	/* ... and gets the same one */
	assert_ptr_equal(g.d, d);
	db_put(p, g.d);
	db_pool_free(p);
}

/* backend_pid - pg_backend_pid() of d as text (static buffer). */
static const char *
backend_pid(struct db *d)
{
	static char pid[32];
	PGresult *r = db_query(d, "SELECT pg_backend_pid()::text",
	    DB_NOPARAMS);

	snprintf(pid, sizeof(pid), "%s", value(r));
	PQclear(r);
	return pid;
}

/* kill_backend - terminate pid from another connection and wait for it to
 * be gone. */
static void
kill_backend(struct db *killer, const char *pid)
{
	PGresult *r;
	int i;

	r = db_query(killer, "SELECT pg_terminate_backend($1::int, 5000)",
	    DB_PARAMS(pid));
	assert_string_equal(value(r), "t");
	PQclear(r);
	for (i = 0; i < 100; i++) {
		r = db_query(killer, "SELECT count(*) FROM pg_stat_activity "
		    "WHERE pid = $1::int", DB_PARAMS(pid));
		if (strcmp(value(r), "0") == 0) {
			PQclear(r);
			return;
		}
		PQclear(r);
		usleep(20000);
	}
	fail_msg("backend %s did not go away", pid);
}

static void
test_reconnect_outside_transaction(void **state)
{
	struct db_pool *p;
	struct db *d, *killer;
	PGresult *r;
	long resets;
	char old[32];

	(void)state;
	NEED_PG();
	p = db_pool_new(conninfo, 2);
	d = db_get(p);
	killer = db_get(p);
	assert_non_null(d);
	assert_non_null(killer);
	snprintf(old, sizeof(old), "%s", backend_pid(d));
	kill_backend(killer, old);
	resets = db_reconnects();
	/* the server dropped it: reset and retried once, invisibly */
	r = db_query(d, "SELECT $1::int * 2", DB_PARAMS("21"));
	assert_string_equal(value(r), "42");
	PQclear(r);
	assert_int_equal(db_reconnects() - resets, 1);
	assert_string_not_equal(backend_pid(d), old);
	db_put(p, killer);
	db_put(p, d);
	db_pool_free(p);
}

static void
test_reconnect_inside_transaction(void **state)
{
	struct db_pool *p;
	struct db *d, *killer;
	PGresult *r;
	char old[32];

	(void)state;
	NEED_PG();
	p = db_pool_new(conninfo, 2);
	d = db_get(p);
	killer = db_get(p);
	snprintf(old, sizeof(old), "%s", backend_pid(d));
	assert_int_equal(db_begin(d), 0);
	kill_backend(killer, old);
	/* inside a transaction the caller must see the failure */
	assert_null(db_query(d, "SELECT 1", DB_NOPARAMS));
	assert_int_equal(db_rollback(d), -1);
	db_put(p, d);
	db_put(p, killer);
	/* the pool heals on the next db_get */
	d = db_get(p);
	assert_non_null(d);
	r = db_query(d, "SELECT 7", DB_NOPARAMS);
	assert_string_equal(value(r), "7");
	PQclear(r);
	db_put(p, d);
	assert_int_equal(db_ping(p), 0);
	db_pool_free(p);
}

/* Statements are prepared once per connection: the server lists them,
 * a reused text is not prepared again, a stale plan after a schema change
 * fails once and is prepared afresh, and many distinct statements (more
 * than the cache holds) still run. */
static void
test_prepared_statements(void **state)
{
	struct db_pool *p;
	struct db *d;
	PGresult *r;
	char sql[64];
	int i;

	(void)state;
	NEED_PG();
	p = db_pool_new(conninfo, 1);
	d = db_get(p);
	assert_non_null(d);
	for (i = 0; i < 3; i++) {
		r = db_query(d, "SELECT $1::int + 1", DB_PARAMS("41"));
		assert_string_equal(value(r), "42");
		PQclear(r);
	}
	r = db_query(d, "SELECT count(*) FROM pg_prepared_statements "
	    "WHERE statement = 'SELECT $1::int + 1'", DB_NOPARAMS);
	assert_string_equal(value(r), "1");
	PQclear(r);

	assert_int_not_equal(db_exec(d, "CREATE TEMP TABLE prep_t (a int)",
	    DB_NOPARAMS), -1);
	assert_int_not_equal(db_exec(d, "INSERT INTO prep_t VALUES (7)",
	    DB_NOPARAMS), -1);
	r = db_query(d, "SELECT * FROM prep_t", DB_NOPARAMS);
	assert_string_equal(value(r), "7");
	PQclear(r);
	assert_int_not_equal(db_exec(d, "ALTER TABLE prep_t ADD COLUMN b int",
	    DB_NOPARAMS), -1);
	/* the cached plan's result type changed: one failure, then fine */
	r = db_query(d, "SELECT * FROM prep_t", DB_NOPARAMS);
	if (r == NULL)
		assert_string_equal(db_sqlstate(d), "0A000");
	else
		PQclear(r);
	r = db_query(d, "SELECT * FROM prep_t", DB_NOPARAMS);
	assert_non_null(r);
	assert_int_equal(PQnfields(r), 2);
	PQclear(r);

	/* more distinct texts than the cache holds: the rest run unprepared;
	 * each needs its own storage, as the cache keys on the text */
	for (i = 0; i < 300; i++) {
		snprintf(sql, sizeof(sql), "SELECT %d + $1::int", i);
		r = db_query(d, sql, DB_PARAMS("1"));
		assert_non_null(r);
		assert_int_equal(atoi(value(r)), i + 1);
		PQclear(r);
	}
	r = db_query(d, "SELECT $1::int + 1", DB_PARAMS("1"));
	assert_string_equal(value(r), "2");
	PQclear(r);
	db_put(p, d);
	db_pool_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params_macro),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_query_params),
		cmocka_unit_test(test_errors_sqlstate),
		cmocka_unit_test(test_exec_rows_and_transactions),
		cmocka_unit_test(test_pool_waits_for_free_connection),
		cmocka_unit_test(test_reconnect_outside_transaction),
		cmocka_unit_test(test_reconnect_inside_transaction),
		cmocka_unit_test(test_prepared_statements),
	};

	conninfo = getenv("GROUPS_TEST_PG_CONNINFO");
	if (conninfo != NULL && *conninfo == '\0')
		conninfo = NULL;
	log_init("test_db", 1);
	log_set_level(LOG_LVL_CRIT);
	alarm(60);
	/* GROUPS_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("GROUPS_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("GROUPS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
