/* SPDX-License-Identifier: MIT */
/*
 * groupsadmin_migrate.c - `groupsadmin migrate` and `groupsadmin status`.
 *
 * Files NNN_name.sql are applied in numeric order, each in one transaction
 * with its schema_migrations row (checksum = SHA-256 of the file), under a
 * session advisory lock.  A changed applied file, or a new file numbered
 * below the newest applied one, stops the run before anything is applied.
 *
 * SECURITY: the one place that executes SQL text that is not a constant
 * with parameters: a migration is many statements, which only PQexec
 * accepts (db.h deliberately has no such call), so migrate opens its own
 * libpq connection.  The files are trusted release artefacts installed by
 * root, never built from input.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "config.h"
#include "daemon.h"
#include "db.h"
#include "strbuf.h"
#include "xalloc.h"

#include "groupsadmin.h"

/* Key of the session advisory lock held while migrating ("grpsmigr"). */
#define MIGRATE_LOCK_KEY	"7453010373645722994"

#define CHECKSUM_HEX	(2 * crypto_hash_sha256_BYTES + 1)

struct migration {
	int	 version;
	char	*name;		/* file name, e.g. 001_schema.sql */
	char	*path;
	char	*sql;		/* file contents, NUL-terminated */
	size_t	 len;
	char	 checksum[CHECKSUM_HEX];
};

struct migration_set {
	struct migration *m;	/* sorted by version */
	size_t		  n;
};

static const char create_bookkeeping[] =
	"CREATE TABLE IF NOT EXISTS schema_migrations ("
	" version integer PRIMARY KEY,"
	" name text NOT NULL,"
	" applied_at timestamptz NOT NULL DEFAULT now(),"
	" checksum text NOT NULL)";

/* set_free - free the files of s (not s itself). */
static void
set_free(struct migration_set *s)
{
	size_t	 i;

	for (i = 0; i < s->n; i++) {
		free(s->m[i].name);
		free(s->m[i].path);
		free(s->m[i].sql);
	}
	free(s->m);
	s->m = NULL;
	s->n = 0;
}

/* parse_name - version of "NNN_word.sql", or -1 if name is not one. */
static int
parse_name(const char *name)
{
	const char	*p;
	long		 v = 0;
	size_t		 nd = 0, len;

	for (p = name; isdigit((unsigned char)*p); p++) {
		if (++nd > 9)
			return -1;
		v = v * 10 + (*p - '0');
	}
	if (nd == 0 || v == 0 || *p != '_')
		return -1;
	p++;
	len = strlen(p);
	if (len <= 4 || strcmp(p + len - 4, ".sql") != 0)
		return -1;
	for (; len > 4; p++, len--)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			return -1;
	return (int)v;
}

/* read_file - whole file at path into *bufp (allocated, NUL-terminated,
 * caller frees).  0, or -1 with the reason printed. */
static int
read_file(const char *path, size_t max, char **bufp, size_t *lenp)
{
	struct strbuf	*sb;
	struct stat	 st;
	char		 chunk[65536];
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		groupsadmin_err("%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		groupsadmin_err("%s: not a regular file", path);
		close(fd);
		return -1;
	}
	sb = strbuf_new((size_t)st.st_size < max ? (size_t)st.st_size : max);
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			groupsadmin_err("%s: %s", path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		if (strbuf_len(sb) + (size_t)n > max) {
			groupsadmin_err("%s: larger than %zu bytes", path, max);
			goto fail;
		}
		strbuf_append(sb, chunk, (size_t)n);
	}
	close(fd);
	*bufp = strbuf_detach(sb, lenp);
	return 0;
fail:
	close(fd);
	strbuf_free(sb);
	return -1;
}

/* transaction_control - non-zero if a line of sql is a bare transaction
 * statement (the runner owns the transaction of every file); *lineno gets
 * its line.  A plain "END;" closes plpgsql blocks and is allowed; the
 * runner's own check after the file catches whatever this misses. */
static int
transaction_control(const char *sql, int *lineno)
{
	static const char *const bad[] = {
		"begin", "begin work", "begin transaction", "start transaction",
		"commit", "commit work", "commit transaction", "end work",
		"end transaction", "rollback", "rollback work", "abort",
	};
	const char	*p = sql, *e, *nl;
	size_t		 i, n;
	int		 line;

	for (line = 1; *p != '\0'; line++) {
		nl = strchr(p, '\n');
		e = nl != NULL ? nl : p + strlen(p);
		while (p < e && isspace((unsigned char)*p))
			p++;
		while (e > p && isspace((unsigned char)e[-1]))
			e--;
		if (e > p && e[-1] == ';') {
			for (e--; e > p && isspace((unsigned char)e[-1]); e--)
				;
			n = (size_t)(e - p);
			for (i = 0; i < NELEM(bad); i++)
				if (strlen(bad[i]) == n &&
				    strncasecmp(p, bad[i], n) == 0) {
					*lineno = line;
					return 1;
				}
		}
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return 0;
}

static int
cmp_version(const void *a, const void *b)
{
	const struct migration *x = a, *y = b;

	return (x->version > y->version) - (x->version < y->version);
}

/* scan_dir - load every NNN_name.sql file of dir into s, sorted.  0, or
 * -1 with the reason printed. */
static int
scan_dir(const char *dir, struct migration_set *s)
{
	struct migration	*m;
	struct dirent		*de;
	unsigned char		 sum[crypto_hash_sha256_BYTES];
	size_t			 cap = 0, i, nl;
	DIR			*d;
	int			 v;

	s->m = NULL;
	s->n = 0;
	if ((d = opendir(dir)) == NULL) {
		groupsadmin_err("%s: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		nl = strlen(de->d_name);
		if (nl < 4 || strcmp(de->d_name + nl - 4, ".sql") != 0)
			continue;
		if ((v = parse_name(de->d_name)) < 0) {
			groupsadmin_err("warning: %s/%s: not NNN_name.sql, "
			    "ignored", dir, de->d_name);
			continue;
		}
		if (s->n >= GA_MIGRATION_MAX_FILES) {
			groupsadmin_err("%s: more than %d migrations", dir,
			    GA_MIGRATION_MAX_FILES);
			goto fail;
		}
		if (s->n == cap) {
			cap = cap ? 2 * cap : 16;
			s->m = xreallocarray(s->m, cap, sizeof(*s->m));
		}
		m = &s->m[s->n];
		memset(m, 0, sizeof(*m));
		m->version = v;
		m->name = xstrdup(de->d_name);
		m->path = xasprintf("%s/%s", dir, de->d_name);
		s->n++;
	}
	closedir(d);
	d = NULL;

	qsort(s->m, s->n, sizeof(*s->m), cmp_version);
	for (i = 0; i < s->n; i++) {
		m = &s->m[i];
		if (i > 0 && m->version == s->m[i - 1].version) {
			groupsadmin_err("%s: %s and %s have the same number",
			    dir, s->m[i - 1].name, m->name);
			goto fail;
		}
		if (read_file(m->path, GA_MIGRATION_MAX_FILE, &m->sql,
		    &m->len) == -1)
			goto fail;
		if (memchr(m->sql, '\0', m->len) != NULL) {
			groupsadmin_err("%s: contains a NUL byte", m->path);
			goto fail;
		}
		crypto_hash_sha256(sum, (const unsigned char *)m->sql, m->len);
		sodium_bin2hex(m->checksum, sizeof(m->checksum), sum,
		    sizeof(sum));
	}
	return 0;
fail:
	if (d != NULL)
		closedir(d);
	set_free(s);
	return -1;
}

/* find_version - the file of version v in s, or NULL. */
static struct migration *
find_version(const struct migration_set *s, int v)
{
	struct migration key = { .version = v };

	return bsearch(&key, s->m, s->n, sizeof(*s->m), cmp_version);
}

/* error_line - 1-based line of the 1-based character position pos in sql
 * (PostgreSQL counts characters, the file is UTF-8). */
static int
error_line(const char *sql, long pos)
{
	const unsigned char	*p = (const unsigned char *)sql;
	long			 chars = 0;
	int			 line = 1;

	for (; *p != '\0'; p++) {
		if ((*p & 0xc0) != 0x80 && ++chars >= pos)
			break;
		if (*p == '\n')
			line++;
	}
	return line;
}

/* print_pg_error - the server's error for result r of running what. */
static void
print_pg_error(PGconn *c, const PGresult *r, const char *what,
    const char *sql)
{
	const char	*msg, *detail, *hint, *pos, *ctx;
	char		 where[64] = "";

	if (r == NULL) {
		groupsadmin_err("%s: %s", what, PQerrorMessage(c));
		return;
	}
	msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	if (msg == NULL) {
		groupsadmin_err("%s: %s", what, PQresultErrorMessage(r));
		return;
	}
	detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
	hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
	pos = PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION);
	ctx = PQresultErrorField(r, PG_DIAG_CONTEXT);
	if (sql != NULL && pos != NULL)
		snprintf(where, sizeof(where), ":%d",
		    error_line(sql, strtol(pos, NULL, 10)));
	groupsadmin_err("%s%s: %s (SQLSTATE %s)", what, where, msg,
	    PQresultErrorField(r, PG_DIAG_SQLSTATE));
	if (detail != NULL)
		fprintf(stderr, "  detail: %s\n", detail);
	if (hint != NULL)
		fprintf(stderr, "  hint: %s\n", hint);
	if (ctx != NULL)
		fprintf(stderr, "  context: %s\n", ctx);
}

/* run - PQexecParams on c; returns the result (caller PQclears) or NULL
 * with the error printed. */
static PGresult *
run(PGconn *c, const char *sql, int n, const char *const *params)
{
	PGresult	*r;

	r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	if (r != NULL && (PQresultStatus(r) == PGRES_COMMAND_OK ||
	    PQresultStatus(r) == PGRES_TUPLES_OK))
		return r;
	print_pg_error(c, r, sql, NULL);
	PQclear(r);
	return NULL;
}

/* run_ok - run for statements: 0 or -1. */
static int
run_ok(PGconn *c, const char *sql)
{
	PGresult	*r;

	if ((r = run(c, sql, 0, NULL)) == NULL)
		return -1;
	PQclear(r);
	return 0;
}

/* migrate_connect - own connection for the migration run (see the file
 * comment); NULL with the reason printed. */
static PGconn *
migrate_connect(void)
{
	static const char *const keys[] = { "dbname",
	    "fallback_application_name", NULL };
	const char	*vals[] = { cfg.db_conninfo, "groupsadmin", NULL };
	PGconn		*c;

	c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		groupsadmin_err("database: %s",
		    c ? PQerrorMessage(c) : "out of memory");
		PQfinish(c);
		return NULL;
	}
	/* NOTICEs such as "relation exists, skipping" are noise here. */
	if (run_ok(c, "SET client_min_messages = warning") == -1) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* migrate_lock - take the session advisory lock, saying so if another
 * runner holds it.  0 or -1. */
static int
migrate_lock(PGconn *c)
{
	PGresult	*r;
	int		 got;

	r = run(c, "SELECT pg_try_advisory_lock($1::bigint)",
	    DB_PARAMS(MIGRATE_LOCK_KEY));
	if (r == NULL)
		return -1;
	got = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (got)
		return 0;
	fprintf(stderr, "groupsadmin: waiting for another migration run\n");
	if ((r = run(c, "SELECT pg_advisory_lock($1::bigint)",
	    DB_PARAMS(MIGRATE_LOCK_KEY))) == NULL)
		return -1;
	PQclear(r);
	return 0;
}

/* check_applied - compare the applied migrations (r: version, name,
 * checksum) with the files; print every problem.  Returns the number of
 * refusals (changed files, new files older than the newest applied). */
static int
check_applied(const PGresult *r, const struct migration_set *s,
    const char *dir, int *newest)
{
	struct migration	*m;
	const char		*name, *sum;
	size_t			 i;
	int			 bad = 0, v, row;

	*newest = 0;
	for (i = 0; i < (size_t)PQntuples(r); i++) {
		v = (int)strtol(PQgetvalue(r, (int)i, 0), NULL, 10);
		name = PQgetvalue(r, (int)i, 1);
		sum = PQgetvalue(r, (int)i, 2);
		if (v > *newest)
			*newest = v;
		if ((m = find_version(s, v)) == NULL) {
			groupsadmin_err("warning: applied migration %s is "
			    "not in %s", name, dir);
			continue;
		}
		if (strcmp(m->checksum, sum) != 0) {
			groupsadmin_err("%s was changed after it was applied "
			    "(checksum %.12s, applied %.12s); put the change "
			    "in a new migration", m->path, m->checksum, sum);
			bad++;
		}
	}
	for (i = 0; i < s->n; i++) {
		m = &s->m[i];
		if (m->version >= *newest)
			break;
		for (row = 0; row < PQntuples(r); row++)
			if (strtol(PQgetvalue(r, row, 0), NULL, 10) ==
			    m->version)
				break;
		if (row == PQntuples(r)) {
			groupsadmin_err("%s is not applied but is older than "
			    "applied migration %d; renumber it", m->path,
			    *newest);
			bad++;
		}
	}
	return bad;
}

/* apply_one - run file m and record it, in one transaction.  0 or -1. */
static int
apply_one(PGconn *c, const struct migration *m)
{
	PGresult	*r;
	ExecStatusType	 st;
	char		 vbuf[16];
	int		 line;

	if (transaction_control(m->sql, &line)) {
		groupsadmin_err("%s:%d: BEGIN/COMMIT/ROLLBACK in a migration; "
		    "the runner wraps each file in a transaction", m->path,
		    line);
		return -1;
	}
	if (run_ok(c, "BEGIN") == -1)
		return -1;
	r = PQexec(c, m->sql);
	st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
	    st != PGRES_EMPTY_QUERY) {
		print_pg_error(c, r, m->path, m->sql);
		PQclear(r);
		goto fail;
	}
	PQclear(r);
	if (PQtransactionStatus(c) != PQTRANS_INTRANS) {
		groupsadmin_err("%s: the file ended the runner's transaction; "
		    "check the database, its changes may be committed "
		    "without a schema_migrations row", m->path);
		goto fail;
	}
	snprintf(vbuf, sizeof(vbuf), "%d", m->version);
	if ((r = run(c, "INSERT INTO schema_migrations (version, name, "
	    "checksum) VALUES ($1::integer, $2, $3)",
	    DB_PARAMS(vbuf, m->name, m->checksum))) == NULL)
		goto fail;
	PQclear(r);
	if (run_ok(c, "COMMIT") == -1)
		return -1;
	return 0;
fail:
	if (PQtransactionStatus(c) != PQTRANS_IDLE)
		PQclear(PQexec(c, "ROLLBACK"));
	return -1;
}

int
groupsadmin_migrate(const char *dir)
{
	struct migration_set	 s;
	PGconn			*c = NULL;
	PGresult		*r = NULL;
	size_t			 i, applied = 0;
	int			 rc = GA_FAIL, newest, v;

	if (scan_dir(dir, &s) == -1)
		return GA_FAIL;
	if (s.n == 0) {
		groupsadmin_err("%s: no NNN_name.sql migrations", dir);
		goto out;
	}
	if ((c = migrate_connect()) == NULL)
		goto out;
	/* Lock first: CREATE TABLE IF NOT EXISTS races between runners. */
	if (migrate_lock(c) == -1 || run_ok(c, create_bookkeeping) == -1)
		goto out;
	if ((r = run(c, "SELECT version, name, checksum FROM "
	    "schema_migrations ORDER BY version", DB_NOPARAMS)) == NULL)
		goto out;
	if (check_applied(r, &s, dir, &newest) > 0) {
		groupsadmin_err("nothing applied");
		goto out;
	}
	for (i = 0; i < s.n; i++) {
		if (s.m[i].version <= newest)
			continue;
		if (apply_one(c, &s.m[i]) == -1) {
			groupsadmin_err("%s not applied; stopped", s.m[i].name);
			goto out;
		}
		printf("applied %s\n", s.m[i].name);
		fflush(stdout);
		applied++;
	}
	v = s.m[s.n - 1].version > newest ? s.m[s.n - 1].version : newest;
	if (applied == 0)
		printf("up to date (version %d)\n", v);
	else
		printf("%zu migration%s applied, now at version %d\n",
		    applied, applied == 1 ? "" : "s", v);
	rc = GA_OK;
out:
	PQclear(r);
	if (c != NULL) {
		/* The lock would go with the session anyway; be explicit. */
		PQclear(PQexec(c, "SELECT pg_advisory_unlock_all()"));
		PQfinish(c);
	}
	set_free(&s);
	return rc;
}

int
groupsadmin_status(const char *dir)
{
	struct migration_set	 s = { NULL, 0 };
	struct migration	*m;
	struct db		*d;
	PGresult		*r = NULL;
	const char		*state;
	size_t			 i;
	int			 rc = GA_FAIL, v, newest = 0, j, pending = 0;
	int			 changed = 0;

	if (dir != NULL && scan_dir(dir, &s) == -1)
		return GA_FAIL;
	if ((d = db_get(daemon_db)) == NULL) {
		groupsadmin_err("cannot connect to the database");
		set_free(&s);
		return GA_FAIL;
	}
	if ((r = db_query(d, "SELECT to_regclass('schema_migrations') IS "
	    "NOT NULL", DB_NOPARAMS)) == NULL)
		goto out;
	if (PQgetvalue(r, 0, 0)[0] != 't') {
		printf("no migrations applied\n");
		PQclear(r);
		r = NULL;
	} else {
		PQclear(r);
		if ((r = db_query(d, "SELECT version, name, "
		    "to_char(applied_at AT TIME ZONE 'UTC', "
		    "'YYYY-MM-DD HH24:MI:SS\"Z\"'), checksum "
		    "FROM schema_migrations ORDER BY version",
		    DB_NOPARAMS)) == NULL)
			goto out;
		for (j = 0; j < PQntuples(r); j++) {
			v = (int)strtol(PQgetvalue(r, j, 0), NULL, 10);
			newest = v > newest ? v : newest;
			state = "";
			if (dir != NULL) {
				m = find_version(&s, v);
				if (m == NULL)
					state = "  (file missing)";
				else if (strcmp(m->checksum,
				    PQgetvalue(r, j, 3)) != 0) {
					state = "  (file CHANGED)";
					changed++;
				}
			}
			printf("%5d  %-32s  %s  %.12s%s\n", v,
			    PQgetvalue(r, j, 1), PQgetvalue(r, j, 2),
			    PQgetvalue(r, j, 3), state);
		}
	}
	for (i = 0; i < s.n; i++) {
		m = &s.m[i];
		for (j = 0; r != NULL && j < PQntuples(r); j++)
			if (strtol(PQgetvalue(r, j, 0), NULL, 10) ==
			    m->version)
				break;
		if (r != NULL && j < PQntuples(r))
			continue;
		printf("%5d  %-32s  %-20s  %.12s%s\n", m->version, m->name,
		    "pending", m->checksum,
		    m->version < newest ? "  (older than applied)" : "");
		pending++;
	}
	if (changed > 0)
		printf("%d applied file%s changed: migrate will refuse\n",
		    changed, changed == 1 ? "" : "s");
	else if (dir != NULL && pending == 0)
		printf("up to date (version %d)\n", newest);
	rc = GA_OK;
out:
	PQclear(r);
	db_put(daemon_db, d);
	set_free(&s);
	return rc;
}
