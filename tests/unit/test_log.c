/* SPDX-License-Identifier: MIT */
/*
 * test_log.c - unit tests of structured logging and the shipper (log.c).
 *
 * Events are checked field by field (log_make_event), through a sink, with
 * level filtering and message truncation.  The shipper posts to a real
 * httpd on 127.0.0.1 (port 0) whose POST /v1/log route records every event
 * it receives and can be held shut (a gate) or made to fail: this gives
 * exact counts of shipped, dropped and fallback events, and shows that
 * log_shutdown flushes the queue.
 *
 * The server runs in this process and logs through the module under test,
 * so the log level is raised to warn while shipping (the server logs its
 * own chatter at info and debug) and the handler replies without logging.
 *
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "api_proto.h"
#include "bounds.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "strbuf.h"
#include "../testutil.h"


#define SECRET		"log-test-secret-0123456789"
#define MAX_SEEN	256

/* The fake errord: what POST /v1/log received. */
static struct {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 posts;		/* requests that reached the handler */
	int		 events;
	char		*messages[MAX_SEEN];
	char		 first_daemon[64], first_level[16];
	long long	 first_pid;
	int		 gate_closed;	/* handler waits while set */
	int		 fail;		/* reply 500 */
} srv = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.cv = PTHREAD_COND_INITIALIZER,
};

static struct httpd *server;
static char server_url[64];

static void
deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* fake_errord_log - record the batch; never logs (see the file top). */
static int
fake_errord_log(struct httpd_req *req)
{
	json_t *evs = json_object_get(httpd_req_json(req), F_EV_EVENTS);
	struct timespec until;
	size_t i;
	json_t *ev;
	int n = 0, fail;

	pthread_mutex_lock(&srv.mu);
	srv.posts++;
	pthread_cond_broadcast(&srv.cv);
	deadline_in(&until, 5000);	/* bounded: never hang the suite */
	while (srv.gate_closed)
		if (pthread_cond_timedwait(&srv.cv, &srv.mu, &until) != 0)
			break;
	fail = srv.fail;
	if (!fail)
		json_array_foreach(evs, i, ev) {
			const char *m = json_string_value(json_object_get(ev,
			    F_EV_MESSAGE));

			if (srv.events == 0) {
				snprintf(srv.first_daemon,
				    sizeof(srv.first_daemon), "%s",
				    json_string_value(json_object_get(ev,
				    F_EV_DAEMON)));
				snprintf(srv.first_level,
				    sizeof(srv.first_level), "%s",
				    json_string_value(json_object_get(ev,
				    F_EV_LEVEL)));
				srv.first_pid = json_integer_value(
				    json_object_get(ev, F_EV_PID));
			}
			if (srv.events < MAX_SEEN)
				srv.messages[srv.events] = strdup(m ? m : "");
			srv.events++;
			n++;
		}
	pthread_mutex_unlock(&srv.mu);
	if (fail)
		return httpd_reply(req, 500, API_JSON_TYPE, "{}", 2);
	return httpd_reply_json(req, 200, json_pack("{s:i}", F_EV_ACCEPTED,
	    n));
}

static const struct httpd_route routes[] = {
	{ "POST", API_ERRORD_LOG, fake_errord_log, HTTPD_JSON, 0 },
	HTTPD_ROUTE_END
};

static void
srv_reset(void)
{
	int i;

	pthread_mutex_lock(&srv.mu);
	for (i = 0; i < MAX_SEEN; i++) {
		free(srv.messages[i]);
		srv.messages[i] = NULL;
	}
	srv.posts = srv.events = 0;
	srv.gate_closed = srv.fail = 0;
	srv.first_daemon[0] = srv.first_level[0] = '\0';
	srv.first_pid = 0;
	pthread_mutex_unlock(&srv.mu);
}

/* srv_wait_posts - wait (bounded) until n requests reached the handler. */
static int
srv_wait_posts(int n)
{
	struct timespec until;
	int ok = 1;

	deadline_in(&until, 5000);
	pthread_mutex_lock(&srv.mu);
	while (srv.posts < n)
		if (pthread_cond_timedwait(&srv.cv, &srv.mu, &until) != 0) {
			ok = 0;
			break;
		}
	pthread_mutex_unlock(&srv.mu);
	return ok;
}

/*
 * srv_settled - once the shipper has stopped nothing posts any more; lock
 * and unlock once so that this thread sees what the handlers wrote, then
 * read srv without the lock (an assertion must not leave it held).
 */
static void
srv_settled(void)
{
	pthread_mutex_lock(&srv.mu);
	pthread_mutex_unlock(&srv.mu);
}

static void
srv_open_gate(void)
{
	pthread_mutex_lock(&srv.mu);
	srv.gate_closed = 0;
	pthread_cond_broadcast(&srv.cv);
	pthread_mutex_unlock(&srv.mu);
}

static int
group_setup(void **state)
{
	struct httpd_config hc = {
		.name = "fake-errord",
		.host = "127.0.0.1",
		.port = 0,
		.routes = routes,
		.secret = SECRET,
		.threads = 2,
	};

	(void)state;
	log_init("logtest", 0);
	log_set_level(LOG_LVL_WARN);
	if ((server = httpd_start(&hc)) == NULL)
		return -1;
	snprintf(server_url, sizeof(server_url), "http://127.0.0.1:%d",
	    httpd_port(server));
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	httpd_stop(server);
	srv_reset();
	log_set_sink(NULL);
	return 0;
}

/* Sink capture. */

static struct {
	int	 count;
	json_t	*last;
} sunk;

static void
capture_sink(json_t *ev)
{
	sunk.count++;
	json_decref(sunk.last);
	sunk.last = json_incref(ev);
}

static int
sink_setup(void **state)
{
	(void)state;
	sunk.count = 0;
	sunk.last = NULL;
	log_set_sink(capture_sink);
	log_set_level(LOG_LVL_DEBUG);
	return 0;
}

static int
sink_teardown(void **state)
{
	(void)state;
	log_set_sink(NULL);
	log_set_level(LOG_LVL_WARN);
	json_decref(sunk.last);
	sunk.last = NULL;
	return 0;
}

static const char *
jstr(const json_t *ev, const char *key)
{
	return json_string_value(json_object_get(ev, key));
}

static void
test_make_event_fields(void **state)
{
	char host[128] = "";
	json_t *ev, *fields;

	(void)state;
	log_set_version("1.2.3");
	fields = json_pack("{s:i, s:s}", "n", 7, "who", "alice");
	ev = log_make_event(LOG_LVL_WARN, "abc-123", fields, "hello there");
	assert_true(is_rfc3339_us(jstr(ev, F_EV_TIME)));
	assert_string_equal(jstr(ev, F_EV_DAEMON), "logtest");
	assert_int_equal(json_integer_value(json_object_get(ev, F_EV_PID)),
	    getpid());
	assert_string_equal(jstr(ev, F_EV_LEVEL), "warn");
	assert_string_equal(jstr(ev, F_EV_MESSAGE), "hello there");
	assert_string_equal(jstr(ev, F_EV_CID), "abc-123");
	assert_ptr_equal(json_object_get(ev, F_EV_FIELDS), fields);
	assert_int_equal(json_integer_value(json_object_get(fields, "n")), 7);
	assert_string_equal(jstr(ev, F_EV_VERSION), "1.2.3");
	gethostname(host, sizeof(host) - 1);
	assert_string_equal(jstr(ev, F_EV_HOST), host);
	json_decref(ev);

	/* optional fields are absent, not empty */
	ev = log_make_event(LOG_LVL_CRIT, "", NULL, "m");
	assert_null(json_object_get(ev, F_EV_CID));
	assert_null(json_object_get(ev, F_EV_FIELDS));
	assert_string_equal(jstr(ev, F_EV_LEVEL), "crit");
	json_decref(ev);
	ev = log_make_event(LOG_LVL_DEBUG, NULL, NULL, "m");
	assert_null(json_object_get(ev, F_EV_CID));
	assert_string_equal(jstr(ev, F_EV_LEVEL), "debug");
	json_decref(ev);

	/* invalid UTF-8 is kept, lossy, rather than lost */
	ev = log_make_event(LOG_LVL_INFO, NULL, NULL, "bad \xff byte");
	assert_string_equal(jstr(ev, F_EV_MESSAGE), "bad ? byte");
	json_decref(ev);
}

static void
test_now_rfc3339(void **state)
{
	char buf[40], small[11];
	time_t before = time(NULL);
	struct tm tm;
	char year[8];

	(void)state;
	log_now_rfc3339(buf, sizeof(buf));
	assert_true(is_rfc3339_us(buf));
	gmtime_r(&before, &tm);
	strftime(year, sizeof(year), "%Y-", &tm);
	assert_true(strncmp(buf, year, 5) == 0);
	log_now_rfc3339(small, sizeof(small));
	assert_int_equal(strlen(small), 10);
}

static void
test_utf8_fix(void **state)
{
	static const struct { const char *in, *out; } v[] = {
		{ "plain ascii", "plain ascii" },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80" },
		{ "latin1 caf\xe9!", "latin1 caf?!" },
		{ "lone \x80\xbf cont", "lone ?? cont" },
		{ "cut \xe2\x82", "cut ??" },
		{ "cut \xc3", "cut ?" },
		{ "overlong \xc0\xaf \xe0\x80\xaf", "overlong ?? ???" },
		{ "surrogate \xed\xa0\x80", "surrogate ???" },
		{ "too big \xf4\x90\x80\x80", "too big ????" },
		{ "max \xf4\x8f\xbf\xbf", "max \xf4\x8f\xbf\xbf" },
		{ "bad lead \xf8\xff\xfe", "bad lead ???" },
		{ "", "" },
	};
	char buf[64];
	size_t i;
	json_t *j;

	(void)state;
	for (i = 0; i < NELEM(v); i++) {
		snprintf(buf, sizeof(buf), "%s", v[i].in);
		log_utf8_fix(buf);
		if (strcmp(buf, v[i].out) != 0)
			fail_msg("case %zu: got \"%s\"", i, buf);
		/* and the result is always acceptable to jansson */
		j = json_string(buf);
		assert_non_null(j);
		json_decref(j);
	}
}

static void
test_level_parse_and_name(void **state)
{
	static const char *const names[] = { "debug", "info", "warn", "error",
	    "crit" };
	int i;

	(void)state;
	for (i = 0; i < 5; i++) {
		assert_int_equal(log_level_parse(names[i]), i);
		assert_string_equal(log_level_name(i), names[i]);
	}
	assert_int_equal(LOG_LVL_DEBUG, 0);
	assert_int_equal(LOG_LVL_CRIT, 4);
	assert_int_equal(log_level_parse("warning"), -1);
	assert_int_equal(log_level_parse("INFO"), -1);
	assert_int_equal(log_level_parse(""), -1);
	assert_int_equal(log_level_parse("info "), -1);
	assert_string_equal(log_level_name(-1), "unknown");
	assert_string_equal(log_level_name(5), "unknown");
}

static void
test_sink_receives(void **state)
{
	json_t *fields;

	(void)state;
	log_info("count %d of %s", 5, "x");
	assert_int_equal(sunk.count, 1);
	assert_string_equal(jstr(sunk.last, F_EV_MESSAGE), "count 5 of x");
	assert_string_equal(jstr(sunk.last, F_EV_LEVEL), "info");
	assert_string_equal(jstr(sunk.last, F_EV_DAEMON), "logtest");

	errno = ENOENT;
	log_warn("open %s", "/nope");
	assert_int_equal(sunk.count, 2);
	assert_string_equal(jstr(sunk.last, F_EV_MESSAGE),
	    "open /nope: No such file or directory");
	assert_string_equal(jstr(sunk.last, F_EV_LEVEL), "warn");
	/* log_warn leaves errno as it found it */
	assert_int_equal(errno, ENOENT);

	log_warnx("plain");
	assert_string_equal(jstr(sunk.last, F_EV_MESSAGE), "plain");
	log_err("bad %s", "thing");
	assert_string_equal(jstr(sunk.last, F_EV_LEVEL), "error");
	log_debug("dbg");
	assert_string_equal(jstr(sunk.last, F_EV_LEVEL), "debug");
	assert_int_equal(sunk.count, 5);

	fields = json_pack("{s:s}", "group", "g1");
	log_event(LOG_LVL_ERROR, "cid-9", fields, "with %s", "fields");
	assert_int_equal(sunk.count, 6);
	assert_string_equal(jstr(sunk.last, F_EV_CID), "cid-9");
	assert_string_equal(jstr(json_object_get(sunk.last, F_EV_FIELDS),
	    "group"), "g1");
	assert_string_equal(jstr(sunk.last, F_EV_MESSAGE), "with fields");
}

static void
test_level_filtering(void **state)
{
	(void)state;
	log_set_level(LOG_LVL_WARN);
	log_debug("no");
	log_info("no");
	assert_int_equal(sunk.count, 0);
	log_warnx("yes 1");
	log_err("yes 2");
	log_event(LOG_LVL_CRIT, NULL, NULL, "yes 3");
	assert_int_equal(sunk.count, 3);
	assert_string_equal(jstr(sunk.last, F_EV_MESSAGE), "yes 3");
	/* a filtered event's fields are released (LeakSanitizer checks) */
	log_event(LOG_LVL_INFO, NULL, json_pack("{s:i}", "k", 1), "no");
	assert_int_equal(sunk.count, 3);
	log_set_level(LOG_LVL_CRIT);
	log_err("no");
	assert_int_equal(sunk.count, 3);
}

static void
test_long_message_truncated(void **state)
{
	char *big;
	const char *m;

	(void)state;
	big = malloc(3 * LOG_MAX_MESSAGE);
	assert_non_null(big);
	memset(big, 'a', 3 * LOG_MAX_MESSAGE - 1);
	big[3 * LOG_MAX_MESSAGE - 1] = '\0';
	log_warnx("%s", big);
	free(big);
	assert_int_equal(sunk.count, 1);
	m = jstr(sunk.last, F_EV_MESSAGE);
	assert_int_equal(strlen(m), LOG_MAX_MESSAGE - 1);
	assert_string_equal(m + LOG_MAX_MESSAGE - 4, "...");
	assert_int_equal(m[0], 'a');
}

/* Shipping. */

/* metric_line - the value of an unlabelled metric in the rendering. */
static long long
metric_line(const char *name)
{
	struct strbuf *sb = strbuf_new(0);
	char pat[128];
	const char *p;
	long long v = -1;

	metrics_render(sb);
	snprintf(pat, sizeof(pat), "\n%s ", name);
	if ((p = strstr(strbuf_str(sb), pat)) != NULL)
		v = strtoll(p + strlen(pat), NULL, 10);
	strbuf_free(sb);
	return v;
}

static void
test_ship_drops_when_queue_full(void **state)
{
	uint64_t dropped0 = log_dropped();
	int i;

	(void)state;
	srv_reset();
	srv.gate_closed = 1;
	assert_int_equal(log_start_shipper(server_url, SECRET, 4), 0);
	log_warnx("ship-test first");
	/* the shipper is now inside its POST, held by the gate */
	assert_true(srv_wait_posts(1));
	for (i = 0; i < 50; i++)
		log_warnx("ship-test burst %d", i);
	/* four fit in the queue, the other 46 are dropped and counted */
	assert_int_equal(log_dropped() - dropped0, 46);
	assert_int_equal(metric_line("log_dropped_total"),
	    (long long)log_dropped());
	srv_open_gate();
	log_shutdown(3000);
	srv_settled();
	assert_int_equal(srv.events, 5);
	assert_string_equal(srv.messages[0], "ship-test first");
	for (i = 0; i < 4; i++) {
		char want[32];

		snprintf(want, sizeof(want), "ship-test burst %d", i);
		assert_string_equal(srv.messages[1 + i], want);
	}
	assert_string_equal(srv.first_daemon, "logtest");
	assert_string_equal(srv.first_level, "warn");
	assert_int_equal(srv.first_pid, getpid());
	assert_int_equal(log_dropped() - dropped0, 46);
}

static void
test_ship_shutdown_flushes(void **state)
{
	long long shipped0 = metric_line("log_shipped_total");
	int i;

	(void)state;
	srv_reset();
	assert_int_equal(log_start_shipper(server_url, SECRET, 0), 0);
	/* a second start is a no-op */
	assert_int_equal(log_start_shipper(server_url, SECRET, 0), 0);
	for (i = 0; i < 700; i++)
		log_err("ship-test flush %d", i);
	/* returns only once everything queued reached errord */
	log_shutdown(5000);
	srv_settled();
	assert_int_equal(srv.events, 700);
	assert_string_equal(srv.messages[0], "ship-test flush 0");
	assert_string_equal(srv.messages[199], "ship-test flush 199");
	/* more than LOG_BATCH_MAX events: at least two posts */
	assert_true(srv.posts >= 2);
	assert_int_equal(metric_line("log_shipped_total") - shipped0, 700);
	/* after shutdown events go to stderr, not to a dead queue */
	log_warnx("ship-test after shutdown (on stderr)");
	srv_settled();
	assert_int_equal(srv.events, 700);
}

/* with_stderr_to - point fd 2 at path (returns the saved fd) or back. */
static int
stderr_to(const char *path)
{
	int saved = dup(STDERR_FILENO), fd;

	assert_true(saved != -1);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	dup2(fd, STDERR_FILENO);
	close(fd);
	return saved;
}

static void
stderr_back(int saved)
{
	dup2(saved, STDERR_FILENO);
	close(saved);
}

static char *
slurp(const char *path)
{
	struct strbuf *sb = strbuf_new(0);
	char buf[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	assert_true(fd != -1);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		strbuf_append(sb, buf, (size_t)n);
	close(fd);
	return strbuf_detach(sb, NULL);
}

static void
test_ship_fallback_to_stderr(void **state)
{
	long long fb0 = metric_line("log_fallback_total");
	char path[PATH_MAX], *text;
	int saved, fd, i;
	const char *tmp = getenv("TMPDIR");

	(void)state;
	snprintf(path, sizeof(path), "%s/test_log.XXXXXX",
	    tmp && *tmp ? tmp : "/tmp");
	fd = mkstemp(path);
	assert_true(fd != -1);
	close(fd);
	srv_reset();
	srv.fail = 1;
	saved = stderr_to(path);
	assert_int_equal(log_start_shipper(server_url, SECRET, 0), 0);
	for (i = 0; i < 3; i++)
		log_warnx("ship-test refused %d", i);
	assert_true(srv_wait_posts(1));
	log_shutdown(3000);
	stderr_back(saved);
	text = slurp(path);
	unlink(path);
	srv_settled();
	/* nothing stored; every line on stderr, marked */
	assert_int_equal(srv.events, 0);
	for (i = 0; i < 3; i++) {
		char want[64];

		snprintf(want, sizeof(want), "ship-test refused %d "
		    "(errord unavailable)\n", i);
		if (strstr(text, want) == NULL)
			fail_msg("stderr lacks \"%s\": %s", want, text);
	}
	assert_non_null(strstr(text, "logtest["));
	free(text);
	assert_int_equal(metric_line("log_fallback_total") - fb0, 3);
}

static void
test_ship_invalid_utf8_keeps_batch(void **state)
{
	int saved, i, found_ok1 = 0, found_ok2 = 0, found_fixed = 0;

	(void)state;
	srv_reset();
	srv.gate_closed = 1;
	saved = stderr_to("/dev/null");
	assert_int_equal(log_start_shipper(server_url, SECRET, 0), 0);
	log_warnx("ship-test utf8 first");
	assert_true(srv_wait_posts(1));
	/* these three are queued together: one batch */
	log_warnx("ship-test ok-1");
	log_warnx("ship-test latin1 caf\xe9");
	log_warnx("ship-test ok-2");
	srv_open_gate();
	log_shutdown(3000);
	stderr_back(saved);
	srv_settled();
	for (i = 0; i < srv.events && i < MAX_SEEN; i++) {
		found_ok1 |= strcmp(srv.messages[i], "ship-test ok-1") == 0;
		found_ok2 |= strcmp(srv.messages[i], "ship-test ok-2") == 0;
		found_fixed |= strcmp(srv.messages[i],
		    "ship-test latin1 caf?") == 0;
	}
	/* a message that is not UTF-8 must not sink its batch */
	assert_int_equal(srv.events, 4);
	assert_true(found_ok1);
	assert_true(found_ok2);
	assert_true(found_fixed);
}

#define RESTART_CHILD	"--restart-child"

/*
 * restart_child_main - in a fresh process (see below): ship ten events,
 * shut the shipper down, start it again with a smaller queue and ship one
 * more.  argv[2] is the fake errord's URL.
 */
static int
restart_child_main(int argc, char **argv)
{
	int i;

	if (argc != 3)
		return 2;
	log_init("logtest", 0);
	log_set_level(LOG_LVL_WARN);
	if (log_start_shipper(argv[2], SECRET, 0) != 0)
		return 3;
	for (i = 0; i < 10; i++)
		log_warnx("ship-test before restart %d", i);
	log_shutdown(3000);
	if (log_start_shipper(argv[2], SECRET, 4) != 0)
		return 4;
	log_warnx("ship-test after restart");
	log_shutdown(3000);
	return 0;
}

static void
test_ship_restart_smaller_queue(void **state)
{
	char self[PATH_MAX], a1[] = RESTART_CHILD, a2[sizeof(server_url)];
	char *const args[] = { self, a1, a2, NULL };
	pid_t pid;
	ssize_t n;
	int st = 0, i, found = 0;

	(void)state;
	srv_reset();
	/*
	 * In a child, so that a crash cannot take the suite down; a fresh
	 * process (exec), because this one has server threads and a forked
	 * copy must not allocate (the sanitizers' allocators deadlock).
	 */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	snprintf(a2, sizeof(a2), "%s", server_url);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		execv(self, args);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	srv_settled();
	assert_int_equal(srv.events, 11);
	for (i = 0; i < srv.events && i < MAX_SEEN; i++)
		found |= strcmp(srv.messages[i], "ship-test after restart") ==
		    0;
	assert_true(found);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_make_event_fields),
		cmocka_unit_test(test_now_rfc3339),
		cmocka_unit_test(test_level_parse_and_name),
		cmocka_unit_test(test_utf8_fix),
		cmocka_unit_test_setup_teardown(test_sink_receives,
		    sink_setup, sink_teardown),
		cmocka_unit_test_setup_teardown(test_level_filtering,
		    sink_setup, sink_teardown),
		cmocka_unit_test_setup_teardown(test_long_message_truncated,
		    sink_setup, sink_teardown),
		/* tiny queue first: see test_ship_restart_smaller_queue */
		cmocka_unit_test(test_ship_drops_when_queue_full),
		cmocka_unit_test(test_ship_shutdown_flushes),
		cmocka_unit_test(test_ship_fallback_to_stderr),
		cmocka_unit_test(test_ship_invalid_utf8_keeps_batch),
		cmocka_unit_test(test_ship_restart_smaller_queue),
	};

	if (argc > 1 && strcmp(argv[1], RESTART_CHILD) == 0)
		return restart_child_main(argc, argv);
	/* a hang is a failure, not a stuck build */
	alarm(60);
	/* GROUPS_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("GROUPS_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("GROUPS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
