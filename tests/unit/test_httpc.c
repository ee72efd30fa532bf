/* SPDX-License-Identifier: MIT */
/*
 * test_httpc.c - unit tests of the HTTP JSON client (httpc.c).
 *
 * The peer is a real httpd on 127.0.0.1 (port 0) whose handlers count the
 * requests they see, so retries are checked where they happen: only calls
 * marked HTTPC_IDEMPOTENT are sent again after a 502/503/504, and then at
 * most twice.  Timeouts are checked against a "black hole" listener that
 * accepts connections and never answers (counting connections instead of
 * requests).  Also covered: JSON round trips, non-JSON replies, the shared
 * secret, httpc_get_raw's bound, httpc_stream_lines (lines split across
 * reads, a last line without newline, stopping early, a stream that is
 * still open when the time runs out, error replies) and httpc_escape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "api_proto.h"
#include "httpc.h"
#include "httpd.h"
#include "log.h"
#include "strbuf.h"

#define SECRET		"httpc-test-secret-7"

static struct httpd *server;
static char base_url[64];

/* Requests seen by the counting routes. */
static atomic_int hits_get503, hits_post503, hits_500, hits_recover,
    hits_text;

/* Handlers. */

static int
always_503(struct httpd_req *req)
{
	if (strcmp(httpd_req_method(req), "GET") == 0)
		atomic_fetch_add(&hits_get503, 1);
	else
		atomic_fetch_add(&hits_post503, 1);
	return httpd_reply(req, 503, API_JSON_TYPE,
	    "{\"error\": \"busy\"}", 17);
}

static int
always_500(struct httpd_req *req)
{
	atomic_fetch_add(&hits_500, 1);
	return httpd_reply(req, 500, API_JSON_TYPE, "{\"error\": \"x\"}", 14);
}

/* recover - 503 twice, then 200. */
static int
recover(struct httpd_req *req)
{
	if (atomic_fetch_add(&hits_recover, 1) < 2)
		return httpd_reply(req, 503, API_JSON_TYPE, "{}", 2);
	return httpd_reply_json(req, 200, json_pack("{s:b}", "ok", 1));
}

static int
echo(struct httpd_req *req)
{
	const char *a = httpd_req_header(req, API_AUTH_HEADER);

	return httpd_reply_json(req, 200, json_pack("{s:O, s:s}", "got",
	    httpd_req_json(req), "auth", a ? a : ""));
}

static int
text(struct httpd_req *req)
{
	atomic_fetch_add(&hits_text, 1);
	return httpd_reply(req, 200, "text/plain", "not json at all", 15);
}

static char big_body[100000];

static int
big(struct httpd_req *req)
{
	return httpd_reply(req, 200, "application/octet-stream", big_body,
	    sizeof(big_body));
}

static int
lines(struct httpd_req *req)
{
	static const char body[] = "alpha\nbeta\n\ngamma";

	return httpd_reply(req, 200, API_NDJSON_TYPE, body, sizeof(body) - 1);
}

static int
many_lines(struct httpd_req *req)
{
	struct strbuf *sb = strbuf_new(0);
	int i, rc;

	for (i = 0; i < 5000; i++)
		strbuf_appendf(sb, "line %d\n", i);
	rc = httpd_reply(req, 200, API_NDJSON_TYPE, sb->buf, sb->len);
	strbuf_free(sb);
	return rc;
}

/* A stream that sends one line and then stays open, parked. */
static atomic_int open_sent, open_freed;

static ssize_t
open_fn(void *ctx, char *buf, size_t max)
{
	(void)ctx;
	if (max < 6)
		return -1;
	if (atomic_exchange(&open_sent, 1) == 0) {
		memcpy(buf, "hello\n", 6);
		return 6;
	}
	return 0;
}

static void
open_free(void *ctx)
{
	(void)ctx;
	atomic_fetch_add(&open_freed, 1);
}

static int
open_stream(struct httpd_req *req)
{
	atomic_store(&open_sent, 0);
	return httpd_reply_stream(req, 200, API_NDJSON_TYPE, open_fn, NULL,
	    open_free) != NULL ? 0 : -1;
}

static const struct httpd_route routes[] = {
	{ "GET", "/v1/503", always_503, 0, 0 },
	{ "POST", "/v1/503", always_503, 0, 0 },
	{ "GET", "/v1/500", always_500, 0, 0 },
	{ "GET", "/v1/recover", recover, 0, 0 },
	{ "POST", "/v1/echo", echo, HTTPD_JSON, 0 },
	{ "GET", "/v1/text", text, 0, 0 },
	{ "GET", "/v1/big", big, 0, 0 },
	{ "GET", "/v1/lines", lines, 0, 0 },
	{ "GET", "/v1/many", many_lines, 0, 0 },
	{ "GET", "/v1/open", open_stream, 0, 0 },
	HTTPD_ROUTE_END
};

/* The black hole: accepts, counts, never answers. */
static struct {
	int		 fd;
	int		 port;
	atomic_int	 accepted;
	atomic_int	 stop;
	int		 conns[64];
	int		 nconns;
	pthread_t	 t;
} hole = { .fd = -1 };

static void *
hole_main(void *arg)
{
	struct pollfd pfd;
	int c;

	(void)arg;
	pfd.fd = hole.fd;
	pfd.events = POLLIN;
	while (!atomic_load(&hole.stop)) {
		if (poll(&pfd, 1, 20) != 1)
			continue;
		if ((c = accept(hole.fd, NULL, NULL)) == -1)
			continue;
		if (hole.nconns < 64)
			hole.conns[hole.nconns++] = c;
		else
			close(c);
		atomic_fetch_add(&hole.accepted, 1);
	}
	return NULL;
}

static int
hole_start(void)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	hole.fd = socket(AF_INET, SOCK_STREAM, 0);
	if (hole.fd == -1)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(hole.fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(hole.fd, 16) == -1 ||
	    getsockname(hole.fd, (struct sockaddr *)&sin, &sl) == -1)
		return -1;
	hole.port = ntohs(sin.sin_port);
	return pthread_create(&hole.t, NULL, hole_main, NULL) == 0 ? 0 : -1;
}

static void
hole_stop(void)
{
	int i;

	atomic_store(&hole.stop, 1);
	pthread_join(hole.t, NULL);
	for (i = 0; i < hole.nconns; i++)
		close(hole.conns[i]);
	close(hole.fd);
}

/* hole_wait - bounded wait until n connections were accepted, then a
 * short look for stragglers; the count. */
static int
hole_wait(int n)
{
	int i;

	for (i = 0; i < 250 && atomic_load(&hole.accepted) < n; i++)
		usleep(20000);
	usleep(100000);
	return atomic_load(&hole.accepted);
}

static int
group_setup(void **state)
{
	struct httpd_config hc = {
		.name = "peer",
		.host = "127.0.0.1",
		.port = 0,
		.routes = routes,
		.secret = SECRET,
		.threads = 2,
	};

	(void)state;
	log_init("test_httpc", 1);
	log_set_level(LOG_LVL_CRIT);
	memset(big_body, 'b', sizeof(big_body));
	if ((server = httpd_start(&hc)) == NULL)
		return -1;
	snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d",
	    httpd_port(server));
	return hole_start();
}

static int
group_teardown(void **state)
{
	(void)state;
	httpd_stop(server);
	hole_stop();
	return 0;
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000L +
	    (t.tv_nsec - t0->tv_nsec) / 1000000L;
}

/* Retries. */

static void
test_retry_only_idempotent(void **state)
{
	struct httpc *c = httpc_new(base_url, SECRET, 5000);
	json_t *body = json_pack("{s:i}", "x", 1), *resp = NULL;
	struct timespec t0;
	long status = 0;

	(void)state;
	atomic_store(&hits_get503, 0);
	atomic_store(&hits_post503, 0);
	/* idempotent: first try plus two retries, with a backoff */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(httpc_call(c, "GET", "/v1/503", NULL,
	    HTTPC_IDEMPOTENT, &status, &resp), 0);
	assert_true(ms_since(&t0) >= 250);
	assert_int_equal(status, 503);
	assert_int_equal(atomic_load(&hits_get503), 3);
	/* the last reply's body is handed back */
	assert_string_equal(json_string_value(json_object_get(resp, F_ERROR)),
	    "busy");
	json_decref(resp);

	/* not idempotent: sent exactly once */
	assert_int_equal(httpc_call(c, "POST", "/v1/503", body, 0, &status,
	    NULL), 0);
	assert_int_equal(status, 503);
	assert_int_equal(atomic_load(&hits_post503), 1);
	/* HTTPC_NOLOG alone does not make a call idempotent */
	assert_int_equal(httpc_call(c, "POST", "/v1/503", body, HTTPC_NOLOG,
	    &status, NULL), 0);
	assert_int_equal(atomic_load(&hits_post503), 2);
	/* the caller decides: a POST marked idempotent is retried */
	assert_int_equal(httpc_call(c, "POST", "/v1/503", body,
	    HTTPC_IDEMPOTENT, &status, NULL), 0);
	assert_int_equal(atomic_load(&hits_post503), 5);
	json_decref(body);
	httpc_free(c);
}

static void
test_retry_statuses(void **state)
{
	struct httpc *c = httpc_new(base_url, SECRET, 5000);
	struct strbuf *out = strbuf_new(0);
	json_t *resp = NULL;
	long status = 0;

	(void)state;
	/* a 500 is an answer, not a transient failure */
	atomic_store(&hits_500, 0);
	assert_int_equal(httpc_call(c, "GET", "/v1/500", NULL,
	    HTTPC_IDEMPOTENT, &status, NULL), 0);
	assert_int_equal(status, 500);
	assert_int_equal(atomic_load(&hits_500), 1);

	/* two 503s then 200: the retries make it through */
	atomic_store(&hits_recover, 0);
	assert_int_equal(httpc_call(c, "GET", "/v1/recover", NULL,
	    HTTPC_IDEMPOTENT, &status, &resp), 0);
	assert_int_equal(status, 200);
	assert_true(json_is_true(json_object_get(resp, "ok")));
	assert_int_equal(atomic_load(&hits_recover), 3);
	json_decref(resp);
	atomic_store(&hits_recover, 0);
	assert_int_equal(httpc_call(c, "GET", "/v1/recover", NULL, 0, &status,
	    NULL), 0);
	assert_int_equal(status, 503);
	assert_int_equal(atomic_load(&hits_recover), 1);

	/* httpc_get_raw follows the same rule */
	atomic_store(&hits_get503, 0);
	assert_int_equal(httpc_get_raw(c, "/v1/503", 0, &status, out, 4096),
	    0);
	assert_int_equal(atomic_load(&hits_get503), 1);
	assert_int_equal(httpc_get_raw(c, "/v1/503", HTTPC_IDEMPOTENT, &status,
	    out, 4096), 0);
	assert_int_equal(status, 503);
	assert_int_equal(atomic_load(&hits_get503), 4);
	/* only the last attempt's body is kept */
	assert_string_equal(strbuf_str(out), "{\"error\": \"busy\"}");
	strbuf_free(out);
	httpc_free(c);
}

/* Timeouts and transport errors. */

static void
test_timeout_respected(void **state)
{
	char url[64];
	struct httpc *c;
	struct timespec t0;
	long status = -1, ms;
	int before;

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", hole.port);
	c = httpc_new(url, SECRET, 300);
	before = atomic_load(&hole.accepted);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(httpc_call(c, "POST", "/v1/x", NULL, HTTPC_NOLOG,
	    &status, NULL), -1);
	ms = ms_since(&t0);
	assert_true(ms >= 250);
	if (ms > 2500)
		fail_msg("a 300 ms call took %ld ms", ms);
	assert_int_equal(status, 0);
	assert_int_equal(hole_wait(before + 1) - before, 1);

	/* idempotent: three connections, each bounded by the timeout */
	before = atomic_load(&hole.accepted);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(httpc_call(c, "GET", "/v1/x", NULL,
	    HTTPC_IDEMPOTENT | HTTPC_NOLOG, &status, NULL), -1);
	ms = ms_since(&t0);
	assert_true(ms >= 3 * 250);
	if (ms > 6000)
		fail_msg("three 300 ms attempts took %ld ms", ms);
	assert_int_equal(hole_wait(before + 3) - before, 3);
	httpc_free(c);
}

static void
test_connection_refused(void **state)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	char url[64];
	struct httpc *c;
	struct strbuf *out = strbuf_new(0);
	long status = -1;
	int fd;

	(void)state;
	/* a port that was just free: bind, learn it, close */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d",
	    ntohs(sin.sin_port));
	c = httpc_new(url, NULL, 2000);
	assert_int_equal(httpc_call(c, "GET", "/", NULL, HTTPC_NOLOG, &status,
	    NULL), -1);
	assert_int_equal(status, 0);
	assert_int_equal(httpc_get_raw(c, "/", HTTPC_NOLOG, &status, out, 10),
	    -1);
	strbuf_free(out);
	httpc_free(c);
}

/* Bodies. */

static void
test_json_roundtrip_and_secret(void **state)
{
	struct httpc *c = httpc_new(base_url, SECRET, 5000);
	struct httpc *anon = httpc_new(base_url, NULL, 5000);
	json_t *body, *resp = NULL;
	long status = 0;

	(void)state;
	body = json_pack("{s:s, s:[i, i], s:{s:n}}", "s", "caf\xc3\xa9",
	    "a", 1, 2, "o", "null");
	assert_int_equal(httpc_call(c, "POST", "/v1/echo", body, 0, &status,
	    &resp), 0);
	assert_int_equal(status, 200);
	assert_true(json_equal(json_object_get(resp, "got"), body));
	assert_string_equal(json_string_value(json_object_get(resp, "auth")),
	    "Bearer " SECRET);
	json_decref(resp);
	/* the body is borrowed */
	assert_int_equal(body->refcount, 1);
	assert_int_equal(httpc_call(anon, "POST", "/v1/echo", body, 0, &status,
	    &resp), 0);
	assert_int_equal(status, 401);
	json_decref(resp);
	/* resp may be NULL */
	assert_int_equal(httpc_call(c, "POST", "/v1/echo", body, 0, &status,
	    NULL), 0);
	assert_int_equal(status, 200);
	json_decref(body);
	httpc_free(c);
	assert_null(httpc_free(anon));
	assert_null(httpc_free(NULL));
}

static void
test_non_json_reply(void **state)
{
	struct httpc *c = httpc_new(base_url, SECRET, 5000);
	json_t *resp = (json_t *)1;
	long status = 0;

	(void)state;
	assert_int_equal(httpc_call(c, "GET", "/v1/text", NULL, 0, &status,
	    &resp), 0);
	assert_int_equal(status, 200);
	assert_null(resp);
	httpc_free(c);
}

static void
test_get_raw_bound(void **state)
{
	struct httpc *c = httpc_new(base_url, SECRET, 5000);
	struct strbuf *out = strbuf_new(0);
	long status = 0;

	(void)state;
	assert_int_equal(httpc_get_raw(c, "/v1/big", 0, &status, out,
	    sizeof(big_body)), 0);
	assert_int_equal(status, 200);
	assert_int_equal(out->len, sizeof(big_body));
	assert_memory_equal(out->buf, big_body, sizeof(big_body));
	/* one byte short of the body: refused, not truncated silently */
	assert_int_equal(httpc_get_raw(c, "/v1/big", HTTPC_NOLOG, &status, out,
	    sizeof(big_body) - 1), -1);
	assert_true(out->len <= sizeof(big_body) - 1);
	strbuf_free(out);
	httpc_free(c);
}

/* Streams of lines. */

struct got {
	char	 lines[8][32];
	int	 n;
	int	 stop_after;	/* 0: never */
	long	 sum;		/* of "line %d" numbers */
	int	 in_order;
};

static int
on_line(void *ctx, const char *line, size_t len)
{
	struct got *g = ctx;

	if (g->n < 8)
		snprintf(g->lines[g->n], sizeof(g->lines[0]), "%.*s",
		    (int)len, line);
	g->n++;
	return g->stop_after > 0 && g->n >= g->stop_after;
}

static int
on_numbered(void *ctx, const char *line, size_t len)
{
	struct got *g = ctx;
	char want[32];

	snprintf(want, sizeof(want), "line %d", g->n);
	if (len != strlen(want) || memcmp(line, want, len) != 0)
		g->in_order = 0;
	g->n++;
	return 0;
}

static void
test_stream_lines(void **state)
{
	struct httpc *c = httpc_new(base_url, SECRET, 5000);
	struct got g;
	long status = 0;

	(void)state;
	memset(&g, 0, sizeof(g));
	assert_int_equal(httpc_stream_lines(c, "/v1/lines", 5000, on_line, &g,
	    &status), 0);
	assert_int_equal(status, 200);
	assert_int_equal(g.n, 4);
	assert_string_equal(g.lines[0], "alpha");
	assert_string_equal(g.lines[1], "beta");
	assert_string_equal(g.lines[2], "");
	/* the last line has no newline and still counts */
	assert_string_equal(g.lines[3], "gamma");

	/* fn stops it: no more lines, still a success */
	memset(&g, 0, sizeof(g));
	g.stop_after = 2;
	assert_int_equal(httpc_stream_lines(c, "/v1/lines", 5000, on_line, &g,
	    &status), 0);
	assert_int_equal(g.n, 2);

	/* many lines over many reads, none split or lost */
	memset(&g, 0, sizeof(g));
	g.in_order = 1;
	assert_int_equal(httpc_stream_lines(c, "/v1/many", 5000, on_numbered,
	    &g, &status), 0);
	assert_int_equal(g.n, 5000);
	assert_true(g.in_order);
	httpc_free(c);
}

static void
test_stream_lines_timeout_and_errors(void **state)
{
	struct httpc *c = httpc_new(base_url, SECRET, 5000);
	struct httpc *anon = httpc_new(base_url, NULL, 5000);
	struct timespec t0;
	struct got g;
	long status = 0, ms;

	(void)state;
	/* the stream stays open: time running out is a normal end */
	memset(&g, 0, sizeof(g));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(httpc_stream_lines(c, "/v1/open", 400, on_line, &g,
	    &status), 0);
	ms = ms_since(&t0);
	assert_true(ms >= 350);
	if (ms > 3000)
		fail_msg("a 400 ms stream took %ld ms", ms);
	assert_int_equal(status, 200);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.lines[0], "hello");

	/* an error reply is a response: status set, its body passed on */
	memset(&g, 0, sizeof(g));
	assert_int_equal(httpc_stream_lines(anon, "/v1/lines", 5000, on_line,
	    &g, &status), 0);
	assert_int_equal(status, 401);
	assert_int_equal(g.n, 1);
	assert_non_null(strstr(g.lines[0], "\"error\""));
	memset(&g, 0, sizeof(g));
	assert_int_equal(httpc_stream_lines(c, "/v1/none", 5000, on_line, &g,
	    &status), 0);
	assert_int_equal(status, 404);

	/* the black hole never answers: a transport error */
	{
		char url[64];
		struct httpc *h;

		snprintf(url, sizeof(url), "http://127.0.0.1:%d", hole.port);
		h = httpc_new(url, NULL, 5000);
		memset(&g, 0, sizeof(g));
		assert_int_equal(httpc_stream_lines(h, "/", 300, on_line, &g,
		    &status), -1);
		assert_int_equal(status, 0);
		assert_int_equal(g.n, 0);
		httpc_free(h);
	}
	httpc_free(c);
	httpc_free(anon);
}

/* Sharing one client between threads. */

struct worker {
	struct httpc	*c;
	int		 ok;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	json_t *body, *resp;
	long status;
	int i;

	for (i = 0; i < 25; i++) {
		body = json_pack("{s:i}", "i", i);
		resp = NULL;
		status = 0;
		if (httpc_call(w->c, "POST", "/v1/echo", body, 0, &status,
		    &resp) == 0 && status == 200 &&
		    json_equal(json_object_get(resp, "got"), body))
			w->ok++;
		json_decref(resp);
		json_decref(body);
	}
	return NULL;
}

static void
test_shared_between_threads(void **state)
{
	struct httpc *c = httpc_new(base_url, SECRET, 5000);
	struct worker w[4];
	pthread_t t[4];
	int i;

	(void)state;
	for (i = 0; i < 4; i++) {
		w[i].c = c;
		w[i].ok = 0;
		assert_int_equal(pthread_create(&t[i], NULL, worker_main,
		    &w[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].ok, 25);
	}
	httpc_free(c);
}

static void
test_escape(void **state)
{
	char *e;

	(void)state;
	e = httpc_escape("a b&c=d/\xc3\xa9?#%");
	assert_string_equal(e, "a%20b%26c%3Dd%2F%C3%A9%3F%23%25");
	free(e);
	e = httpc_escape("");
	assert_string_equal(e, "");
	free(e);
	e = httpc_escape("AZaz09-._~");
	assert_string_equal(e, "AZaz09-._~");
	free(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retry_only_idempotent),
		cmocka_unit_test(test_retry_statuses),
		cmocka_unit_test(test_timeout_respected),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_json_roundtrip_and_secret),
		cmocka_unit_test(test_non_json_reply),
		cmocka_unit_test(test_get_raw_bound),
		cmocka_unit_test(test_stream_lines),
		cmocka_unit_test(test_stream_lines_timeout_and_errors),
		cmocka_unit_test(test_shared_between_threads),
		cmocka_unit_test(test_escape),
	};

	alarm(60);
	/* GROUPS_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("GROUPS_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("GROUPS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
