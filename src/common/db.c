/* SPDX-License-Identifier: MIT */
/*
 * db.c - a small pool of libpq connections with reconnect.
 *
 * Connections open lazily and are handed out one caller at a time.  When
 * the server goes away (restart, failover) libpq reports CONNECTION_BAD on
 * the next statement: outside a transaction the connection is reset and the
 * statement retried once, so a PostgreSQL restart costs callers nothing;
 * inside one, the caller gets the error and rolls back.
 *
 * Every statement is prepared once per connection (PQprepare, then
 * PQexecPrepared), keyed by its text: callers pass constant SQL, so a
 * daemon has a few dozen statements, and PostgreSQL then skips parsing
 * and most planning on each call (measured: about half of its CPU under
 * ingest went there).  The cache is forgotten when the connection is
 * reset; a statement the server no longer knows, or whose plan went stale
 * after a schema change, is dropped from it and the call fails once.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bounds.h"
#include "db.h"
#include "log.h"
#include "xalloc.h"

#define DB_STMT_MAX	256	/* prepared statements per connection */

/* One prepared statement: its text and server-side name "s<n>". */
struct db_stmt {
	char		*sql;		/* owned copy; NULL: empty slot */
	unsigned	 hash;
	int		 nparams;
	unsigned	 id;
};

struct db {
	PGconn		*conn;
	int		 in_txn;
	int		 busy;
	char		 sqlstate[6];
	struct db_stmt	 stmts[DB_STMT_MAX];
	unsigned	 nstmts;
	unsigned	 next_id;
};

struct db_pool {
	char		*conninfo;
	int		 size;
	struct db	*conns;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
};

static atomic_long db_resets;

long
db_reconnects(void)
{
	return db_resets;
}

/* stmts_forget - the server has none of d's statements any more. */
static void
stmts_forget(struct db *d)
{
	unsigned i;

	for (i = 0; i < DB_STMT_MAX; i++) {
		free(d->stmts[i].sql);
		d->stmts[i].sql = NULL;
	}
	d->nstmts = 0;
}

struct db_pool *
db_pool_new(const char *conninfo, int size)
{
	struct db_pool *p = xcalloc(1, sizeof(*p));
	pthread_condattr_t ca;

	if (size < 1)
		size = 1;
	if (size > DB_POOL_MAX)
		size = DB_POOL_MAX;
	p->conninfo = xstrdup(conninfo);
	p->size = size;
	p->conns = xcalloc((size_t)size, sizeof(*p->conns));
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	return p;
}

struct db_pool *
db_pool_free(struct db_pool *p)
{
	int i;

	if (p == NULL)
		return NULL;
	for (i = 0; i < p->size; i++) {
		if (p->conns[i].conn != NULL)
			PQfinish(p->conns[i].conn);
		stmts_forget(&p->conns[i]);
	}
	free(p->conns);
	free(p->conninfo);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
	return NULL;
}

static void
db_notice(void *arg, const char *msg)
{
	(void)arg;
	log_debug("db: %.*s", (int)strcspn(msg, "\n"), msg);
}

/* db_reset - PQreset, counted; prepared statements are gone. */
static void
db_reset(struct db *d)
{
	PQreset(d->conn);
	atomic_fetch_add(&db_resets, 1);
	stmts_forget(d);
}

/* db_connect - make sure d has a live connection; 0 or -1 (logged). */
static int
db_connect(struct db_pool *p, struct db *d)
{
	if (d->conn != NULL && PQstatus(d->conn) == CONNECTION_OK)
		return 0;
	if (d->conn != NULL)
		db_reset(d);
	else {
		d->conn = PQconnectdb(p->conninfo);
		if (d->conn != NULL)
			PQsetNoticeProcessor(d->conn, db_notice, NULL);
	}
	if (d->conn == NULL || PQstatus(d->conn) != CONNECTION_OK) {
		const char *m = d->conn ? PQerrorMessage(d->conn) :
		    "out of memory";

		log_err("db: cannot connect: %.*s", (int)strcspn(m, "\n"), m);
		return -1;
	}
	d->in_txn = 0;
	return 0;
}

struct db *
db_get(struct db_pool *p)
{
	struct timespec until;
	struct db *d = NULL;
	int i;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		/* Prefer a connection that is already open. */
		for (i = 0; i < p->size && d == NULL; i++)
			if (!p->conns[i].busy && p->conns[i].conn != NULL)
				d = &p->conns[i];
		for (i = 0; i < p->size && d == NULL; i++)
			if (!p->conns[i].busy)
				d = &p->conns[i];
		if (d != NULL)
			break;
		if (pthread_cond_timedwait(&p->cv, &p->mu, &until) != 0) {
			pthread_mutex_unlock(&p->mu);
			log_err("db: no free connection after 5 s");
			return NULL;
		}
	}
	d->busy = 1;
	pthread_mutex_unlock(&p->mu);
	if (db_connect(p, d) == -1) {
		db_put(p, d);
		return NULL;
	}
	d->sqlstate[0] = '\0';
	return d;
}

void
db_put(struct db_pool *p, struct db *d)
{
	if (d == NULL)
		return;
	if (d->in_txn)
		db_rollback(d);
	pthread_mutex_lock(&p->mu);
	d->busy = 0;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

const char *
db_sqlstate(const struct db *d)
{
	return d->sqlstate;
}

/* stmt_hash - FNV-1a of the statement text. */
static unsigned
stmt_hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* stmt_find - the slot of sql (found or free, by linear probing), or NULL
 * when the table is full. */
static struct db_stmt *
stmt_find(struct db *d, const char *sql, unsigned h, int n)
{
	struct db_stmt *e;
	unsigned i;

	for (i = 0; i < DB_STMT_MAX; i++) {
		e = &d->stmts[(h + i) % DB_STMT_MAX];
		if (e->sql == NULL)
			return d->nstmts < DB_STMT_MAX - 1 ? e : NULL;
		if (e->hash == h && e->nparams == n && strcmp(e->sql, sql) == 0)
			return e;
	}
	return NULL;
}

/* stmt_drop - forget one statement (the server may still have it under
 * its name, which is never used again). */
static void
stmt_drop(struct db *d, struct db_stmt *e)
{
	unsigned i, j, k;

	free(e->sql);
	e->sql = NULL;
	d->nstmts--;
	/* re-insert the rest of the probe run so lookups still find them */
	i = (unsigned)(e - d->stmts);
	for (j = (i + 1) % DB_STMT_MAX; d->stmts[j].sql != NULL;
	    j = (j + 1) % DB_STMT_MAX) {
		struct db_stmt t = d->stmts[j];

		d->stmts[j].sql = NULL;
		for (k = t.hash % DB_STMT_MAX; d->stmts[k].sql != NULL;
		    k = (k + 1) % DB_STMT_MAX)
			;
		d->stmts[k] = t;
	}
}

/* result_ok - r succeeded; else sqlstate is set and r freed. */
static int
result_ok(struct db *d, PGresult *r)
{
	ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	const char *st;

	if (es == PGRES_TUPLES_OK || es == PGRES_COMMAND_OK) {
		d->sqlstate[0] = '\0';
		return 1;
	}
	st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	strlcpy_chk(d->sqlstate, st ? st : "", sizeof(d->sqlstate));
	PQclear(r);
	return 0;
}

/* db_run - one attempt, through the statement cache when there is room;
 * NULL on error with sqlstate set. */
static PGresult *
db_run(struct db *d, const char *sql, int n, const char *const *params)
{
	unsigned h = stmt_hash(sql);
	struct db_stmt *e = stmt_find(d, sql, h, n);
	char name[16];
	PGresult *r;

	if (e == NULL) {
		r = PQexecParams(d->conn, sql, n, NULL, params, NULL, NULL, 0);
		return result_ok(d, r) ? r : NULL;
	}
	if (e->sql == NULL) {
		snprintf(name, sizeof(name), "s%u", d->next_id);
		r = PQprepare(d->conn, name, sql, n, NULL);
		if (!result_ok(d, r))
			return NULL;
		PQclear(r);
		e->sql = xstrdup(sql);
		e->hash = h;
		e->nparams = n;
		e->id = d->next_id++;
		d->nstmts++;
	}
	snprintf(name, sizeof(name), "s%u", e->id);
	r = PQexecPrepared(d->conn, name, n, params, NULL, NULL, 0);
	if (result_ok(d, r))
		return r;
	/* 26000: the server lost it; 0A000: its plan went stale (a
	 * migration changed a table): prepare again next time */
	if (strcmp(d->sqlstate, "26000") == 0 ||
	    strcmp(d->sqlstate, "0A000") == 0)
		stmt_drop(d, e);
	return NULL;
}

PGresult *
db_query(struct db *d, const char *sql, int n, const char *const *params)
{
	PGresult *r;

	if (n > DB_MAX_PARAMS) {
		log_err("db: %d parameters, more than %d", n, DB_MAX_PARAMS);
		return NULL;
	}
	if ((r = db_run(d, sql, n, params)) != NULL)
		return r;
	if (PQstatus(d->conn) == CONNECTION_BAD && !d->in_txn) {
		log_warnx("db: connection lost, reconnecting");
		db_reset(d);
		if (PQstatus(d->conn) == CONNECTION_OK &&
		    (r = db_run(d, sql, n, params)) != NULL)
			return r;
	}
	if (PQstatus(d->conn) == CONNECTION_BAD)
		d->in_txn = 0;	/* the server forgot it */
	log_err("db: [%s] %s: %.*s", d->sqlstate, sql,
	    (int)strcspn(PQerrorMessage(d->conn), "\n"),
	    PQerrorMessage(d->conn));
	return NULL;
}

int
db_query_value(struct db *d, const char *sql, int n,
    const char *const *params, char *val, size_t vallen)
{
	PGresult *r;
	int found;

	if ((r = db_query(d, sql, n, params)) == NULL)
		return -1;
	found = PQntuples(r) > 0;
	if (found && val != NULL)
		strlcpy_chk(val, PQgetvalue(r, 0, 0), vallen);
	PQclear(r);
	return found;
}

long
db_exec(struct db *d, const char *sql, int n, const char *const *params)
{
	PGresult *r = db_query(d, sql, n, params);
	const char *t;
	long rows;

	if (r == NULL)
		return -1;
	t = PQcmdTuples(r);
	rows = (t != NULL && *t != '\0') ? strtol(t, NULL, 10) : 0;
	PQclear(r);
	return rows;
}

int
db_begin(struct db *d)
{
	if (db_exec(d, "BEGIN", DB_NOPARAMS) == -1)
		return -1;
	d->in_txn = 1;
	return 0;
}

int
db_commit(struct db *d)
{
	long rc = db_exec(d, "COMMIT", DB_NOPARAMS);

	d->in_txn = 0;
	return rc == -1 ? -1 : 0;
}

int
db_rollback(struct db *d)
{
	PGresult *r;

	d->in_txn = 0;
	if (PQstatus(d->conn) != CONNECTION_OK)
		return -1;
	r = PQexec(d->conn, "ROLLBACK");
	PQclear(r);
	return 0;
}

int
db_ping(struct db_pool *p)
{
	struct db *d;
	PGresult *r;

	if ((d = db_get(p)) == NULL)
		return -1;
	r = db_query(d, "SELECT 1", DB_NOPARAMS);
	db_put(p, d);
	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}
