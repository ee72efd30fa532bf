/* SPDX-License-Identifier: MIT */
/*
 * daemon.c - the start-up and shutdown every program shares.
 *
 * Order matters: signals are blocked before any thread exists (so only the
 * main thread's sigwait sees SIGTERM), configuration is checked before
 * anything is opened (exit 2 names the problem), privileges are dropped
 * before the crash handler creates its directory and before serving, and
 * logging to errord starts last so that start-up errors reach stderr.
 */
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_proto.h"
#include "config.h"
#include "crash.h"
#include "daemon.h"
#include "db.h"
#include "httpc.h"
#include "log.h"
#include "token.h"

struct db_pool *daemon_db;
char daemon_api_secret[2 * TOKEN_KEY_LEN + 1];

static const struct daemon_spec *the_spec;
static int serving;		/* daemon_main, not a command */
static volatile sig_atomic_t stopping;
static sigset_t daemon_sigs;

int
daemon_stopping(void)
{
	return stopping;
}

static void
usage(const char *name)
{
	fprintf(stderr, "usage: %s [-d] [-n] [-V] [-f config]\n"
	    "  -f file  configuration (default $GROUPS_CONF or "
	    "/etc/groups/groups.conf)\n"
	    "  -d       foreground: log to stderr\n"
	    "  -n       print the effective configuration and exit\n"
	    "  -V       print the version and exit\n", name);
	exit(2);
}

/* daemon_drop_privileges - become cfg.user when started as root. */
static void
daemon_drop_privileges(void)
{
	struct passwd *pw;

	if (cfg.user[0] == '\0' || geteuid() != 0)
		return;
	if ((pw = getpwnam(cfg.user)) == NULL)
		fatalx("user \"%s\" does not exist", cfg.user);
	if (setgroups(1, &pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1)
		fatal("cannot drop privileges to %s", cfg.user);
}

/* daemon_store_crash - post one leftover crash report to errord. */
static int
daemon_store_crash(json_t *ev, void *ctx)
{
	struct httpc *c = ctx;
	json_t *batch = json_pack("{s:[O]}", F_EV_EVENTS, ev);
	long status = 0;
	int rc;

	rc = httpc_call(c, "POST", API_ERRORD_LOG, batch, HTTPC_NOLOG,
	    &status, NULL);
	json_decref(batch);
	return (rc == 0 && status == 200) ? 0 : -1;
}

static void *
daemon_ship_crashes(void *arg)
{
	char *url = arg;
	struct httpc *c = httpc_new(url, daemon_api_secret, 3000);
	int n;

	n = crash_collect(cfg.crash_dir, the_spec->name, daemon_store_crash,
	    c);
	if (n > 0)
		log_info("sent %d crash report(s) of an earlier run to errord",
		    n);
	httpc_free(c);
	free(url);
	return NULL;
}

int
daemon_setup(int argc, char **argv, const struct daemon_spec *spec,
    int *argidx)
{
	const char *path = getenv("GROUPS_CONF");
	char err[512];
	int ch, fg = 0, print = 0;
	pthread_t t;

	the_spec = spec;
	sigemptyset(&daemon_sigs);
	sigaddset(&daemon_sigs, SIGTERM);
	sigaddset(&daemon_sigs, SIGINT);
	sigaddset(&daemon_sigs, SIGHUP);
	/* Before any thread: only the main thread's sigwait takes these.
	 * Commands and cron jobs keep the default: a signal ends them. */
	if (serving)
		pthread_sigmask(SIG_BLOCK, &daemon_sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (path == NULL || *path == '\0')
		path = "/etc/groups/groups.conf";
	while ((ch = getopt(argc, argv, "f:dnVh")) != -1) {
		switch (ch) {
		case 'f': path = optarg; break;
		case 'd': fg = 1; break;
		case 'n': print = 1; break;
		case 'V':
			printf("%s %s\n", spec->name, GROUPS_VERSION);
			exit(0);
		default:
			usage(spec->name);
		}
	}
	if (argidx != NULL)
		*argidx = optind;
	else if (optind != argc)
		usage(spec->name);

	log_init(spec->name, fg);
	log_set_version(GROUPS_VERSION);
	if (config_load(&cfg, path, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: bad configuration: %s\n", spec->name,
		    err);
		exit(2);
	}
	if (print) {
		config_print(&cfg, stdout);
		exit(0);
	}
	log_set_level(log_level_parse(cfg.log_level));
	if (config_load_secret(&cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: bad configuration: %s\n", spec->name,
		    err);
		exit(2);
	}
	token_derive_hex(cfg.secret, strlen(cfg.secret), "api",
	    daemon_api_secret);

	daemon_drop_privileges();
	crash_init(spec->name, GROUPS_VERSION, cfg.crash_dir);
	if (!fg && !(spec->flags & DAEMON_NO_ERRORD)) {
		char *url = config_url(&cfg, cfg.errord_port);

		log_start_shipper(url, daemon_api_secret,
		    (unsigned)cfg.log_queue);
		if (pthread_create(&t, NULL, daemon_ship_crashes, url) == 0)
			pthread_detach(t);
		else
			free(url);
	}
	if (spec->flags & DAEMON_USES_DB)
		daemon_db = db_pool_new(cfg.db_conninfo, cfg.db_pool);
	return 0;
}

void
daemon_teardown(void)
{
	daemon_db = db_pool_free(daemon_db);
	log_shutdown(2000);
}

int
daemon_cron(int argc, char **argv, const struct daemon_spec *spec,
    int (*job)(void))
{
	int rc;

	daemon_setup(argc, argv, spec, NULL);
	log_debug("%s %s starting", spec->name, GROUPS_VERSION);
	rc = job();
	if (rc != 0)
		log_err("%s failed", spec->name);
	daemon_teardown();
	config_free(&cfg);
	return rc == 0 ? 0 : 1;
}

int
daemon_cron_census(const char *sql)
{
	char count[32];
	struct db *d;
	int found;

	if ((d = db_get(daemon_db)) == NULL)
		return -1;
	found = db_query_value(d, sql, DB_NOPARAMS, count, sizeof(count));
	db_put(daemon_db, d);
	if (found != 1)
		return -1;
	log_info("%s: %s candidate(s), nothing processed yet", the_spec->name,
	    count);
	return 0;
}

static int
daemon_debug_crash(struct httpd_req *req)
{
	(void)req;
	crash_trigger();
}

static int
daemon_health(const char **reason)
{
	if ((the_spec->flags & DAEMON_USES_DB) && db_ping(daemon_db) != 0) {
		*reason = "database unreachable";
		return -1;
	}
	if (the_spec->health != NULL)
		return the_spec->health(reason);
	return 0;
}

static void *
daemon_run_thread(void *arg)
{
	(void)arg;
	the_spec->run();
	return NULL;
}

/* daemon_routes - the spec's routes plus the debug ones (allocated). */
static struct httpd_route *
daemon_routes(const struct daemon_spec *spec)
{
	static const struct httpd_route crash = { "POST", API_DEBUG_CRASH,
	    daemon_debug_crash, 0, 0 };
	struct httpd_route *r;
	size_t n = 0;

	while (spec->routes != NULL && spec->routes[n].path != NULL)
		n++;
	r = xcalloc(n + 2, sizeof(*r));
	if (n > 0)
		memcpy(r, spec->routes, n * sizeof(*r));
	if (cfg.debug_endpoints)
		r[n++] = crash;
	return r;
}

int
daemon_main(int argc, char **argv, const struct daemon_spec *spec)
{
	struct httpd_config hc;
	struct httpd_route *routes;
	struct httpd *h;
	pthread_t run;
	int sig, have_run = 0;

	serving = 1;
	daemon_setup(argc, argv, spec, NULL);
	if (spec->init != NULL && spec->init() == -1) {
		log_err("initialisation failed, exiting");
		daemon_teardown();
		exit(1);
	}
	routes = daemon_routes(spec);
	memset(&hc, 0, sizeof(hc));
	hc.name = spec->name;
	hc.host = cfg.listen_host;
	hc.port = *spec->port;
	hc.routes = routes;
	hc.secret = daemon_api_secret;
	hc.threads = cfg.http_threads;
	hc.max_body = spec->max_body ? spec->max_body :
	    (size_t)cfg.http_max_body;
	hc.health = daemon_health;
	if ((h = httpd_start(&hc)) == NULL) {
		daemon_teardown();
		exit(1);
	}
	if (spec->run != NULL) {
		if (pthread_create(&run, NULL, daemon_run_thread, NULL) != 0)
			fatalx("cannot start the %s thread", spec->name);
		have_run = 1;
	}
	log_info("%s %s started on %s:%d", spec->name, GROUPS_VERSION,
	    cfg.listen_host, httpd_port(h));

	for (;;) {
		if (sigwait(&daemon_sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_info("SIGHUP ignored: restart to apply a new "
			    "configuration");
			continue;
		}
		break;
	}
	stopping = 1;
	log_info("%s stopping (signal %d)", spec->name, sig);
	if (spec->stop != NULL)
		spec->stop();
	if (have_run)
		pthread_join(run, NULL);
	httpd_stop(h);
	if (spec->fini != NULL)
		spec->fini();
	free(routes);
	log_info("%s stopped", spec->name);
	daemon_teardown();
	config_free(&cfg);
	exit(0);
}
