/* SPDX-License-Identifier: MIT */
/*
 * db.h - PostgreSQL access (libpq): a small pool, parameterised queries only.
 *
 * SQL text is always a constant; values travel as parameters ($1, $2...),
 * never by string building.  A connection that the server dropped (restart,
 * failover) is reset and the statement retried once, unless it was inside a
 * transaction, where the error goes to the caller (who rolls back).
 *
 *	struct db *d = db_get(pool);
 *	PGresult *r = db_query(d, "SELECT id FROM groups WHERE name = $1",
 *	    DB_PARAMS(name));
 *	...
 *	PQclear(r);
 *	db_put(pool, d);
 */
#ifndef DB_H
#define DB_H

#include <stddef.h>

#include <libpq-fe.h>

struct db_pool;
struct db;

/* DB_PARAMS - expands to "count, array" for db_query/db_exec. */
#define DB_PARAMS(...)							\
	(int)(sizeof((const char *const[]){ __VA_ARGS__ }) /		\
	    sizeof(const char *)),					\
	(const char *const[]){ __VA_ARGS__ }
#define DB_NOPARAMS	0, NULL

/* db_pool_new - returns allocated; connections open lazily. */
struct db_pool *db_pool_new(const char *conninfo, int size);
/* db_pool_free - close everything; accepts NULL, returns NULL. */
struct db_pool *db_pool_free(struct db_pool *);
/* db_get - borrow a connection, waiting at most 5 s for a free one; NULL if
 * none could be had or connected (logged).  Return it with db_put. */
struct db *db_get(struct db_pool *);
/* db_put - return d; a connection left inside a transaction is rolled
 * back first. */
void	 db_put(struct db_pool *, struct db *d);

/* db_query - returns a result with status TUPLES_OK or COMMAND_OK (caller
 * PQclears), or NULL on error (logged with the SQLSTATE). */
PGresult *db_query(struct db *, const char *sql, int n,
	    const char *const *params);
/* db_exec - db_query for statements; returns affected rows or -1. */
long	 db_exec(struct db *, const char *sql, int n,
	    const char *const *params);
/* db_query_value - run a query; 1 if it returned a row, 0 if none, -1 on
 * error.  With a row and val != NULL, its first column is copied to val
 * (truncated to vallen). */
int	 db_query_value(struct db *, const char *sql, int n,
	    const char *const *params, char *val, size_t vallen);
/* db_sqlstate - SQLSTATE of the last failed statement on d, or "". */
const char *db_sqlstate(const struct db *);

int	 db_begin(struct db *);
int	 db_commit(struct db *);
int	 db_rollback(struct db *);

/* db_ping - "SELECT 1" on a pooled connection; 0 or -1. */
int	 db_ping(struct db_pool *);
/* db_reconnects - how many times connections were reset (metrics). */
long	 db_reconnects(void);

#endif
