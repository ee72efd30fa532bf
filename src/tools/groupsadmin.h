/* SPDX-License-Identifier: MIT */
/*
 * groupsadmin.h - private interface between the groupsadmin modules:
 * groupsadmin.c (main, dispatch), groupsadmin_migrate.c (migrate, status)
 * and groupsadmin_seed.c (seed-demo, hash-password).
 *
 * Every command returns an exit status: GA_OK, GA_FAIL (runtime failure)
 * or GA_USAGE (bad command line).  Commands print what the operator needs
 * to stdout and failures to stderr, prefixed "groupsadmin: ".
 */
#ifndef GROUPSADMIN_H
#define GROUPSADMIN_H

#include <stddef.h>

#define GA_OK		0
#define GA_FAIL		1
#define GA_USAGE	2

/* Where `make install` puts the migrations (migrate/status default). */
#ifndef GA_SQL_DIR
#define GA_SQL_DIR	"/usr/share/groups/sql"
#endif

#define GA_MIGRATION_MAX_FILE	(16 * 1024 * 1024)	/* bytes per file */
#define GA_MIGRATION_MAX_FILES	10000
#define GA_PASSWORD_MAX		1024	/* bytes read by hash-password */
#define GA_PASSWORD_MIN		8	/* bytes of GROUPS_DEMO_PASSWORD */

/* groupsadmin_migrate - apply the not yet applied migrations in dir. */
int	 groupsadmin_migrate(const char *dir);
/* groupsadmin_status - list applied migrations; with dir, also compare
 * them with the files and list the pending ones. */
int	 groupsadmin_status(const char *dir);
/* groupsadmin_seed_demo - create the demo admin (email, or NULL for
 * admin@cfg.domain) and the demo group, unless they exist. */
int	 groupsadmin_seed_demo(const char *email);
/* groupsadmin_hash_password - read a password on stdin, print its hash. */
int	 groupsadmin_hash_password(void);

/* groupsadmin_err - print "groupsadmin: <message>\n" to stderr. */
void	 groupsadmin_err(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));

#endif
