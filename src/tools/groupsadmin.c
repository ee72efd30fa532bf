/* SPDX-License-Identifier: MIT */
/*
 * groupsadmin - the operator's command for the groups service.
 *
 *	groupsadmin [-f config] command [arguments]
 *
 * migrate [DIR] applies the numbered SQL migrations, status [DIR] lists
 * them, seed-demo [EMAIL] creates the demo admin and group, hash-password
 * hashes a password read on stdin, config-doc prints the configuration
 * reference, api-secret prints the derived inter-daemon API secret (for
 * scripts that already can read the secret file).  Exit status: 0 done, 1 failed, 2 usage or configuration
 * error.
 *
 * It runs as the invoking operator (or cfg.user if started as root), talks
 * only to PostgreSQL, and logs to stderr rather than errord: the person at
 * the terminal is the one who must see a failure.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "daemon.h"

#include "groupsadmin.h"

static const struct daemon_spec spec = {
	.name = "groupsadmin",
	.flags = DAEMON_NO_HTTP | DAEMON_USES_DB | DAEMON_NO_ERRORD,
};

void
groupsadmin_err(const char *fmt, ...)
{
	char	 msg[1024];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "groupsadmin: %s\n", msg);
}

static int
usage(void)
{
	fprintf(stderr,
	    "usage: groupsadmin [-f config] command [arguments]\n"
	    "commands:\n"
	    "  migrate [DIR]      apply new NNN_name.sql migrations from DIR\n"
	    "                     (default " GA_SQL_DIR ")\n"
	    "  status [DIR]       list applied migrations; with DIR, also\n"
	    "                     changed and pending files\n"
	    "  seed-demo [EMAIL]  create the demo admin account (default\n"
	    "                     admin@<domain>; password from\n"
	    "                     $GROUPS_DEMO_PASSWORD or generated) and\n"
	    "                     the group \"demo\"\n"
	    "  hash-password      read a password on stdin, print its "
	    "Argon2id hash\n"
	    "  config-doc         print the configuration keys (Markdown)\n"
	    "  api-secret         print the inter-daemon API secret (hex)\n"
	    "hash-password and config-doc given first need no "
	    "configuration.\n"
	    "options: -f file configuration (default $GROUPS_CONF or\n"
	    "         /etc/groups/groups.conf); -n print the configuration;\n"
	    "         -V version.  Logs go to stderr.\n");
	return GA_USAGE;
}

/* no_config_command - the commands that need neither configuration nor
 * database, when they are the whole command line.  -1 if argv is not one. */
static int
no_config_command(int argc, char **argv)
{
	if (argc != 2)
		return -1;
	if (strcmp(argv[1], "config-doc") == 0) {
		config_print_doc(stdout);
		return fflush(stdout) == 0 ? GA_OK : GA_FAIL;
	}
	if (strcmp(argv[1], "hash-password") == 0)
		return groupsadmin_hash_password();
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage();
		return GA_OK;
	}
	return -1;
}

/* dispatch - run the command in argv[0..argc-1]; returns the exit status. */
static int
dispatch(int argc, char **argv)
{
	const char	*cmd;

	if (argc < 1)
		return usage();
	cmd = argv[0];
	if (strcmp(cmd, "migrate") == 0 && argc <= 2)
		return groupsadmin_migrate(argc == 2 ? argv[1] : GA_SQL_DIR);
	if (strcmp(cmd, "status") == 0 && argc <= 2)
		return groupsadmin_status(argc == 2 ? argv[1] : NULL);
	if (strcmp(cmd, "seed-demo") == 0 && argc <= 2)
		return groupsadmin_seed_demo(argc == 2 ? argv[1] : NULL);
	if (strcmp(cmd, "hash-password") == 0 && argc == 1)
		return groupsadmin_hash_password();
	if (strcmp(cmd, "config-doc") == 0 && argc == 1) {
		config_print_doc(stdout);
		return GA_OK;
	}
	if (strcmp(cmd, "api-secret") == 0 && argc == 1) {
		printf("%s\n", daemon_api_secret);
		return GA_OK;
	}
	if (strcmp(cmd, "help") == 0 && argc == 1) {
		usage();
		return GA_OK;
	}
	groupsadmin_err("%s: unknown command or wrong arguments", cmd);
	return usage();
}

int
main(int argc, char **argv)
{
	sigset_t	 sigs;
	int		 argidx, rc;

	if ((rc = no_config_command(argc, argv)) != -1)
		return rc;
	if (argc < 2)
		return usage();

	daemon_setup(argc, argv, &spec, &argidx);
	/* daemon_setup blocks these for a daemon's sigwait; an operator's
	 * ^C must work (an interrupted migration rolls back). */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_UNBLOCK, &sigs, NULL);

	rc = dispatch(argc - argidx, argv + argidx);
	if (fflush(stdout) != 0 && rc == GA_OK)
		rc = GA_FAIL;
	daemon_teardown();
	config_free(&cfg);
	return rc;
}
