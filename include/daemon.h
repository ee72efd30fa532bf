/* SPDX-License-Identifier: MIT */
/*
 * daemon.h - the skeleton main every daemon and cron program shares
 * (Postfix's single_server, OpenBSD's proc_run).
 *
 * daemon_main parses the options
 *	-f file	 configuration file (default GROUPS_CONF, /etc/groups/groups.conf)
 *	-d	 foreground: log to stderr instead of errord
 *	-n	 print the effective configuration and exit
 *	-V	 print the version and exit
 * loads and checks the configuration (exit status 2 with a one-line
 * reason on any error), reads the secret, drops privileges to cfg.user when
 * started as root, installs the crash handler, starts logging to errord,
 * ships leftover crash reports, runs spec->init, serves the routes on
 * spec->port, runs spec->run on its own thread, and waits for SIGTERM or
 * SIGINT: then spec->stop, join run, stop serving, spec->fini, flush logs,
 * exit 0.  Every daemon gets GET /healthz, GET /metrics and, with
 * debug_endpoints = yes, POST /v1/debug/crash.
 */
#ifndef DAEMON_H
#define DAEMON_H

#include "httpd.h"

struct db_pool;

#define DAEMON_NO_ERRORD	0x01	/* no shipper: errord itself (it sets
					 * a sink) and operator commands,
					 * whose lines go to stderr */
#define DAEMON_USES_DB		0x02	/* open cfg.db_conninfo into daemon_db */
#define DAEMON_NO_HTTP		0x04	/* cron programs: no server */

struct daemon_spec {
	const char		 *name;
	int			 *port;		/* &cfg.<name>_port */
	const struct httpd_route *routes;	/* may be NULL */
	int			  flags;
	size_t			  max_body;	/* 0: cfg.http_max_body */
	int			(*init)(void);	/* -1: exit 1 */
	void			(*run)(void);	/* own thread; may be NULL */
	void			(*stop)(void);	/* make run return */
	void			(*fini)(void);
	httpd_health_fn		  health;	/* extra /healthz check */
};

/* The pool opened for DAEMON_USES_DB daemons (NULL otherwise). */
extern struct db_pool *daemon_db;
/* The shared secret between daemons (derived from cfg.secret). */
extern char daemon_api_secret[];

/* daemon_main - never returns. */
int	 daemon_main(int argc, char **argv, const struct daemon_spec *)
	    __attribute__((noreturn));

/* daemon_setup - the same start-up for cron programs and commands, without
 * serving: options, config, secret, logging, crash handler, db. Returns 0,
 * exits 2 on bad config.  *argidx gets the index of the first operand. */
int	 daemon_setup(int argc, char **argv, const struct daemon_spec *,
	    int *argidx);
/* daemon_teardown - flush logs, close db. */
void	 daemon_teardown(void);

/* daemon_cron - the main of a cron program: daemon_setup, then job()
 * unless SIGTERM arrived, then daemon_teardown.  Returns the exit status:
 * 0 when job returned 0, 1 otherwise. */
int	 daemon_cron(int argc, char **argv, const struct daemon_spec *,
	    int (*job)(void));

/* daemon_cron_census - the job of a cron program whose processing is not
 * built yet: run sql (one row, one count) on daemon_db and log the count
 * as candidates.  0 or -1. */
int	 daemon_cron_census(const char *sql);

/* daemon_stopping - non-zero once SIGTERM/SIGINT was received. */
int	 daemon_stopping(void);

#ifndef GROUPS_VERSION
#define GROUPS_VERSION	"0.0.0-dev"
#endif

#endif
