/* SPDX-License-Identifier: MIT */
/*
 * groupsadmin_seed.c - `groupsadmin seed-demo` and `groupsadmin
 * hash-password`.
 *
 * seed-demo makes a fresh installation usable: the mail domain
 * (cfg.domain), a verified site-admin account (admin@<domain> unless
 * given) and the group "demo" owned by it.  It is idempotent: what exists
 * is left as it is and reported, and a password is printed only when it
 * was generated for an account created by this run.  The password comes
 * from GROUPS_DEMO_PASSWORD, else it is random.
 *
 * Passwords are hashed with Argon2id (libsodium crypto_pwhash_str_alg,
 * INTERACTIVE limits: about 100 ms and 64 MiB) and wiped from memory after.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "config.h"
#include "daemon.h"
#include "db.h"
#include "xalloc.h"

#include "groupsadmin.h"

#define DEMO_GROUP		"demo"
#define DEMO_TITLE		"Demo group"
#define DEMO_DESCRIPTION	"A group to try the service with."
#define GENERATED_PASSWORD_LEN	20

/* password_hash - Argon2id of pw into out.  0, or -1 (out of memory). */
static int
password_hash(const char *pw, size_t len, char out[crypto_pwhash_STRBYTES])
{
	if (sodium_init() < 0) {
		groupsadmin_err("libsodium failed to initialise");
		return -1;
	}
	if (crypto_pwhash_str_alg(out, pw, len,
	    crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE,
	    crypto_pwhash_ALG_ARGON2ID13) != 0) {
		groupsadmin_err("password hashing failed (out of memory?)");
		return -1;
	}
	return 0;
}

/* password_generate - random password of len characters into out (len+1),
 * about 5.95 bits per character. */
static void
password_generate(char *out, size_t len)
{
	static const char alphabet[] =
	    "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
	size_t	 i;

	for (i = 0; i < len; i++)
		out[i] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
	out[len] = '\0';
}

/* plausible_email - the shape the accounts table accepts. */
static int
plausible_email(const char *s)
{
	const char	*at = strchr(s, '@');
	size_t		 len = strlen(s);

	return len >= 3 && len <= 254 && at != NULL && at != s &&
	    at[1] != '\0' && strchr(at + 1, '@') == NULL &&
	    strpbrk(s, " \t\r\n") == NULL;
}

/* lower_dup - returns allocated ASCII-lowercased copy, caller frees. */
static char *
lower_dup(const char *s)
{
	char	*l = xstrdup(s), *p;

	for (p = l; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return l;
}

/* find_account - id of the account with email (caller frees) into *idp,
 * or NULL if there is none.  0 or -1 (database error). */
static int
find_account(struct db *d, const char *email, char **idp, int *is_admin)
{
	PGresult	*r;

	*idp = NULL;
	if ((r = db_query(d, "SELECT id, is_admin FROM accounts "
	    "WHERE lower(email) = lower($1)", DB_PARAMS(email))) == NULL)
		return -1;
	if (PQntuples(r) == 1) {
		*idp = xstrdup(PQgetvalue(r, 0, 0));
		*is_admin = PQgetvalue(r, 0, 1)[0] == 't';
	}
	PQclear(r);
	return 0;
}

/* seed_group - create the demo group owned by account id unless it
 * exists, in the open transaction; *created and *owned tell what was
 * done.  0 or -1. */
static int
seed_group(struct db *d, const char *domain, const char *id, int *created,
    int *owned)
{
	PGresult	*r;
	char		*gid;
	long		 n;

	if ((r = db_query(d, "INSERT INTO groups (domain, name, title, "
	    "description, subject_tag, created_by) VALUES ($1, $2, $3, $4, "
	    "$5, $6::bigint) ON CONFLICT (domain, name) DO NOTHING "
	    "RETURNING id", DB_PARAMS(domain, DEMO_GROUP, DEMO_TITLE,
	    DEMO_DESCRIPTION, "[" DEMO_GROUP "]", id))) == NULL)
		return -1;
	if (PQntuples(r) == 1) {
		gid = xstrdup(PQgetvalue(r, 0, 0));
		PQclear(r);
		if (db_exec(d, "INSERT INTO activity_log (group_id, actor_id, "
		    "action, details) VALUES ($1::bigint, $2::bigint, "
		    "'group.create', '{\"via\": \"groupsadmin seed-demo\"}')",
		    DB_PARAMS(gid, id)) == -1) {
			free(gid);
			return -1;
		}
		*created = 1;
	} else {
		PQclear(r);
		if ((r = db_query(d, "SELECT id FROM groups WHERE domain = $1 "
		    "AND name = $2", DB_PARAMS(domain, DEMO_GROUP))) == NULL)
			return -1;
		if (PQntuples(r) != 1) {
			PQclear(r);
			groupsadmin_err("group %s@%s vanished", DEMO_GROUP,
			    domain);
			return -1;
		}
		gid = xstrdup(PQgetvalue(r, 0, 0));
		PQclear(r);
	}

	n = db_exec(d, "INSERT INTO memberships (group_id, account_id, role) "
	    "VALUES ($1::bigint, $2::bigint, 'owner') "
	    "ON CONFLICT (group_id, account_id) DO NOTHING",
	    DB_PARAMS(gid, id));
	free(gid);
	if (n == -1)
		return -1;
	*owned = n == 1;
	return 0;
}

int
groupsadmin_seed_demo(const char *email_arg)
{
	struct db	*d;
	PGresult	*r;
	char		 hash[crypto_pwhash_STRBYTES];
	char		 generated[GENERATED_PASSWORD_LEN + 1];
	char		*email, *domain, *id = NULL;
	const char	*pw;
	int		 rc = GA_FAIL, is_admin = 0, created = 0, gen = 0;
	int		 gcreated = 0, owned = 0;

	domain = lower_dup(cfg.domain);
	email = email_arg != NULL ? xstrdup(email_arg) :
	    xasprintf("admin@%s", domain);
	if (!plausible_email(email)) {
		groupsadmin_err("seed-demo: \"%s\" is not an email address",
		    email);
		free(email);
		free(domain);
		return GA_USAGE;
	}
	if ((d = db_get(daemon_db)) == NULL) {
		groupsadmin_err("cannot connect to the database");
		free(email);
		free(domain);
		return GA_FAIL;
	}
	if (find_account(d, email, &id, &is_admin) == -1)
		goto out;

	/* Hash before the transaction: it takes a tenth of a second. */
	hash[0] = '\0';
	if (id == NULL) {
		pw = getenv("GROUPS_DEMO_PASSWORD");
		if (pw == NULL || *pw == '\0') {
			password_generate(generated, GENERATED_PASSWORD_LEN);
			pw = generated;
			gen = 1;
		} else if (strlen(pw) < GA_PASSWORD_MIN) {
			groupsadmin_err("GROUPS_DEMO_PASSWORD is shorter than "
			    "%d characters", GA_PASSWORD_MIN);
			goto out;
		}
		if (password_hash(pw, strlen(pw), hash) == -1)
			goto out;
	}

	if (db_begin(d) == -1)
		goto out;
	if (db_exec(d, "INSERT INTO domains (name) VALUES ($1) "
	    "ON CONFLICT DO NOTHING", DB_PARAMS(domain)) == -1)
		goto rollback;
	if (id == NULL) {
		if ((r = db_query(d, "INSERT INTO accounts (email, "
		    "display_name, password_hash, is_admin, email_verified, "
		    "email_verified_at) VALUES ($1, 'Demo admin', $2, true, "
		    "true, now()) ON CONFLICT ((lower(email))) DO NOTHING "
		    "RETURNING id", DB_PARAMS(email, hash))) == NULL)
			goto rollback;
		if (PQntuples(r) == 1) {
			id = xstrdup(PQgetvalue(r, 0, 0));
			created = 1;
		}
		PQclear(r);
		/* Lost a race with another seed-demo: use its account. */
		if (id == NULL && (find_account(d, email, &id,
		    &is_admin) == -1 || id == NULL))
			goto rollback;
	}
	if (seed_group(d, domain, id, &gcreated, &owned) == -1)
		goto rollback;
	if (db_commit(d) == -1)
		goto out;

	/* Reported only once committed, so a printed password works. */
	if (created) {
		printf("created admin account %s\n", email);
		if (gen)
			printf("password: %s\n", generated);
		else
			printf("password: from GROUPS_DEMO_PASSWORD\n");
	} else
		printf("account %s already exists%s\n", email,
		    is_admin ? "" : " (not a site admin; left unchanged)");
	if (gcreated)
		printf("created group %s@%s (\"%s\")\n", DEMO_GROUP, domain,
		    DEMO_TITLE);
	else
		printf("group %s@%s already exists\n", DEMO_GROUP, domain);
	if (owned)
		printf("made %s an owner of %s@%s\n", email, DEMO_GROUP,
		    domain);
	rc = GA_OK;
	goto out;
rollback:
	db_rollback(d);
out:
	if (rc != GA_OK)
		groupsadmin_err("seed-demo failed; nothing was changed");
	sodium_memzero(generated, sizeof(generated));
	sodium_memzero(hash, sizeof(hash));
	db_put(daemon_db, d);
	free(id);
	free(email);
	free(domain);
	return rc;
}

/* read_password - up to GA_PASSWORD_MAX bytes of stdin into buf, without
 * the final newline, echo off on a terminal.  Length, or -1 (printed). */
static ssize_t
read_password(char *buf, size_t size)
{
	struct termios	 old, quiet;
	size_t		 len = 0;
	ssize_t		 n = 0;
	int		 tty;

	tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	if (tty) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		fputs("Password: ", stderr);
		fflush(stderr);
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	while (len < size) {
		n = read(STDIN_FILENO, buf + len, size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		/* A terminal delivers a line at a time: stop at its end. */
		if (tty && buf[len - 1] == '\n')
			break;
	}
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (n == -1) {
		groupsadmin_err("stdin: %s", strerror(errno));
		return -1;
	}
	if (len == size) {
		groupsadmin_err("password longer than %d bytes",
		    GA_PASSWORD_MAX);
		return -1;
	}
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (memchr(buf, '\0', len) != NULL) {
		groupsadmin_err("password contains a NUL byte");
		return -1;
	}
	return (ssize_t)len;
}

int
groupsadmin_hash_password(void)
{
	char	 pw[GA_PASSWORD_MAX + 1];
	char	 hash[crypto_pwhash_STRBYTES];
	ssize_t	 len;
	int	 rc = GA_FAIL;

	if ((len = read_password(pw, sizeof(pw))) == -1)
		goto out;
	if (len == 0) {
		groupsadmin_err("empty password");
		goto out;
	}
	if (password_hash(pw, (size_t)len, hash) == -1)
		goto out;
	printf("%s\n", hash);
	rc = GA_OK;
out:
	sodium_memzero(pw, sizeof(pw));
	sodium_memzero(hash, sizeof(hash));
	return rc;
}
