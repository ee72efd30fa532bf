/* SPDX-License-Identifier: MIT */
/*
 * test_httpd.c - unit tests of the HTTP server wrapper (httpd.c).
 *
 * A real server runs on 127.0.0.1, port 0, with a small route table: a
 * JSON route, a strict JSON route, a public route, a private route, a
 * route with its own small body bound, a streaming route and a few
 * misbehaving handlers.  It is driven with the real client (httpc.h) where
 * that can express the request, and with libcurl or a raw socket where it
 * cannot (wrong methods, missing or wrong credentials, content types,
 * oversize and chunked bodies, malformed JSON).  Every error must be the
 * documented status with a JSON {"error": ...} body, and every answer is
 * counted in http_requests_total by status.
 *
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "api_proto.h"
#include "daemon.h"
#include "httpc.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "strbuf.h"


#define SECRET		"httpd-test-secret-42"
#define MAX_BODY	4096		/* the server's default bound */
#define SMALL_BODY	16		/* /v1/small's own bound */

static struct httpd *server;
static int server_port;
static char base_url[64];

/* Health as the test wants it. */
static int health_bad;

static int
health(const char **reason)
{
	if (health_bad) {
		*reason = "database unreachable";
		return -1;
	}
	return 0;
}

/* Handlers. */

/* echo_json - the decoded body and what the handler saw of the request. */
static int
echo_json(struct httpd_req *req)
{
	json_t *r = json_pack("{s:O, s:s, s:s, s:s, s:s}",
	    "body", httpd_req_json(req),
	    "method", httpd_req_method(req),
	    "path", httpd_req_path(req),
	    "cid", httpd_req_cid(req),
	    "peer", httpd_req_peer(req));

	return httpd_reply_json(req, 200, r);
}

/* strict_json - exactly {"name": string, "n"?: int}. */
static int
strict_json(struct httpd_req *req)
{
	const char *name;
	int n = -1;

	if (httpd_json_unpack(req, "{s:s, s?i !}", "name", &name, "n", &n) ==
	    -1)
		return 0;
	return httpd_reply_json(req, 201, json_pack("{s:s, s:i}", "name",
	    name, "n", n));
}

static int
public_text(struct httpd_req *req)
{
	const char *q = httpd_req_query(req, "q");
	const char *h = httpd_req_header(req, "X-Test");
	char buf[256];
	int n;

	n = snprintf(buf, sizeof(buf), "public q=%s h=%s", q ? q : "(none)",
	    h ? h : "(none)");
	return httpd_reply(req, 200, "text/plain", buf, (size_t)n);
}

static int
private_text(struct httpd_req *req)
{
	return httpd_reply(req, 200, "text/plain", "private", 7);
}

/* small_body - the raw body's length and bytes. */
static int
small_body(struct httpd_req *req)
{
	size_t len;
	const char *b = httpd_req_body(req, &len);

	return httpd_reply_json(req, 200, json_pack("{s:i, s:s%}", "len",
	    (int)len, "body", b, len));
}

static int
fail_handler(struct httpd_req *req)
{
	(void)req;
	return -1;
}

static int
noreply_handler(struct httpd_req *req)
{
	(void)req;
	return 0;
}

static int second_reply_rc;

static int
twice_handler(struct httpd_req *req)
{
	httpd_reply(req, 202, "text/plain", "first", 5);
	second_reply_rc = httpd_reply(req, 200, "text/plain", "second", 6);
	return 0;
}

static int
headers_handler(struct httpd_req *req)
{
	static const char *const extra[] = { "Auth-Status", "OK",
	    "Auth-Server", "127.0.0.1", NULL };

	return httpd_reply_with(req, 200, extra, "text/plain", "h", 1);
}

static int
prefix_handler(struct httpd_req *req)
{
	const char *p = httpd_req_path(req);

	return httpd_reply(req, 200, "text/plain", p, strlen(p));
}

/* The stream: a producer pushes text and wakes; fn parks when empty. */
static struct {
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct httpd_stream	*s;
	struct strbuf		*pending;
	int			 done;
	int			 parked;	/* fn returned 0, not yet woken */
	int			 parks;		/* times fn returned 0 */
	int			 frees;
	int			 lines_seen;	/* by the client */
} st = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.cv = PTHREAD_COND_INITIALIZER,
};

static ssize_t
stream_fn(void *ctx, char *buf, size_t max)
{
	ssize_t n;

	if (ctx != &st)		/* server thread: no cmocka assertions */
		abort();
	pthread_mutex_lock(&st.mu);
	if (st.pending->len > 0) {
		n = (ssize_t)(st.pending->len < max ? st.pending->len : max);
		memcpy(buf, st.pending->buf, (size_t)n);
		memmove(st.pending->buf, st.pending->buf + n,
		    st.pending->len - (size_t)n);
		strbuf_truncate(st.pending, st.pending->len - (size_t)n);
	} else if (st.done) {
		n = -1;
	} else {
		st.parked = 1;
		st.parks++;
		n = 0;
	}
	pthread_cond_broadcast(&st.cv);
	pthread_mutex_unlock(&st.mu);
	return n;
}

static void
stream_free(void *ctx)
{
	if (ctx != &st)
		abort();
	pthread_mutex_lock(&st.mu);
	st.frees++;
	st.s = NULL;
	pthread_cond_broadcast(&st.cv);
	pthread_mutex_unlock(&st.mu);
}

static int
stream_handler(struct httpd_req *req)
{
	struct httpd_stream *s;

	s = httpd_reply_stream(req, 200, API_NDJSON_TYPE, stream_fn, &st,
	    stream_free);
	pthread_mutex_lock(&st.mu);
	st.s = s;
	pthread_cond_broadcast(&st.cv);
	pthread_mutex_unlock(&st.mu);
	return s != NULL ? 0 : -1;
}

static const struct httpd_route routes[] = {
	{ "POST", "/v1/echo", echo_json, HTTPD_JSON, 0 },
	{ "POST", "/v1/strict", strict_json, HTTPD_JSON, 0 },
	{ "GET", "/v1/public", public_text, HTTPD_PUBLIC, 0 },
	{ "GET", "/v1/private", private_text, 0, 0 },
	{ "POST", "/v1/small", small_body, 0, SMALL_BODY },
	{ "GET", "/v1/stream", stream_handler, 0, 0 },
	{ "GET", "/v1/fail", fail_handler, 0, 0 },
	{ "GET", "/v1/noreply", noreply_handler, 0, 0 },
	{ "GET", "/v1/twice", twice_handler, 0, 0 },
	{ "GET", "/v1/headers", headers_handler, HTTPD_PUBLIC, 0 },
	{ "GET", "/v1/files/", prefix_handler, HTTPD_PUBLIC | HTTPD_PREFIX,
	    0 },
	HTTPD_ROUTE_END
};

static int
group_setup(void **state)
{
	struct httpd_config hc = {
		.name = "testd",
		.host = "127.0.0.1",
		.port = 0,
		.routes = routes,
		.secret = SECRET,
		.threads = 2,
		.max_body = MAX_BODY,
		.health = health,
	};

	(void)state;
	/* keep the server's own warnings off the test output */
	log_init("test_httpd", 1);
	log_set_level(LOG_LVL_CRIT);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if ((server = httpd_start(&hc)) == NULL)
		return -1;
	server_port = httpd_port(server);
	snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d",
	    server_port);
	return server_port > 0 ? 0 : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	httpd_stop(server);
	strbuf_free(st.pending);
	curl_global_cleanup();
	return 0;
}

/* A libcurl request with full control of what is sent. */

struct resp {
	long		 status;
	struct strbuf	*body;
	struct strbuf	*headers;
	json_t		*json;		/* body decoded, if it is JSON */
};

struct upload {
	const char	*p;
	size_t		 left;
	size_t		 piece;		/* bytes per read callback */
};

static size_t
collect(char *p, size_t size, size_t n, void *u)
{
	strbuf_append(u, p, size * n);
	return size * n;
}

static size_t
upload_read(char *buf, size_t size, size_t n, void *u)
{
	struct upload *up = u;
	size_t k = size * n;

	if (k > up->piece)
		k = up->piece;
	if (k > up->left)
		k = up->left;
	memcpy(buf, up->p, k);
	up->p += k;
	up->left -= k;
	return k;
}

static void
resp_free(struct resp *r)
{
	strbuf_free(r->body);
	strbuf_free(r->headers);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

/*
 * request - method path with optional headers (NULL-terminated "Name: v"
 * list), body (NULL: none) sent as-is or chunked; fills r.
 */
static void
request(const char *method, const char *path, const char *const *hdrs,
    const char *body, size_t len, int chunked, struct resp *r)
{
	struct curl_slist *sl = NULL;
	struct upload up = { body, len, 1000 };
	char url[256];
	CURL *e;
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	r->body = strbuf_new(0);
	r->headers = strbuf_new(0);
	snprintf(url, sizeof(url), "%s%s", base_url, path);
	e = curl_easy_init();
	assert_non_null(e);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r->body);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, collect);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r->headers);
	for (; hdrs != NULL && *hdrs != NULL; hdrs++)
		sl = curl_slist_append(sl, *hdrs);
	sl = curl_slist_append(sl, "Expect:");
	if (body != NULL && chunked) {
		sl = curl_slist_append(sl, "Transfer-Encoding: chunked");
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, upload_read);
		curl_easy_setopt(e, CURLOPT_READDATA, &up);
	} else if (body != NULL) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)len);
	}
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, sl);
	rc = curl_easy_perform(e);
	if (rc != CURLE_OK)
		fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(e);
	curl_slist_free_all(sl);
	r->json = json_loadb(r->body->buf, r->body->len, 0, NULL);
}

static const char *const auth_json[] = {
	"Authorization: Bearer " SECRET,
	"Content-Type: application/json",
	NULL
};
static const char *const auth_only[] = {
	"Authorization: Bearer " SECRET,
	NULL
};

/* http_count - the current http_requests_total{code="status"}. */
static int64_t
http_count(unsigned status)
{
	char labels[32];

	snprintf(labels, sizeof(labels), "code=\"%u\"", status);
	return metric_value(metric_counter("http_requests_total",
	    "HTTP requests answered, by status", labels));
}

/*
 * expect_error - r is status with a JSON {"error": "...containing want"}
 * body, served as application/json and not cacheable.
 */
static void
expect_error(const struct resp *r, long status, const char *want)
{
	const char *e;

	if (r->status != status)
		fail_msg("status %ld, expected %ld; body %s", r->status,
		    status, strbuf_str(r->body));
	if (!json_is_object(r->json))
		fail_msg("error body is not a JSON object: %s",
		    strbuf_str(r->body));
	assert_int_equal(json_object_size(r->json), 1);
	e = json_string_value(json_object_get(r->json, F_ERROR));
	assert_non_null(e);
	if (strstr(e, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", e, want);
	assert_non_null(strcasestr(strbuf_str(r->headers),
	    "\r\nContent-Type: application/json\r\n"));
	assert_non_null(strcasestr(strbuf_str(r->headers),
	    "\r\nCache-Control: no-store\r\n"));
}

/* Routing. */

static void
test_not_found(void **state)
{
	int64_t before = http_count(404);
	struct resp r;

	(void)state;
	request("GET", "/v1/nosuch", auth_only, NULL, 0, 0, &r);
	expect_error(&r, 404, "no such endpoint");
	resp_free(&r);
	/* unknown paths are 404 with or without credentials */
	request("POST", "/nosuch", NULL, "{}", 2, 0, &r);
	expect_error(&r, 404, "no such endpoint");
	resp_free(&r);
	/* no prefix matching unless the route asks for it */
	request("POST", "/v1/echo/more", auth_json, "{}", 2, 0, &r);
	expect_error(&r, 404, "no such endpoint");
	resp_free(&r);
	assert_int_equal(http_count(404) - before, 3);
}

static void
test_method_not_allowed(void **state)
{
	int64_t before = http_count(405);
	struct resp r;

	(void)state;
	request("GET", "/v1/echo", auth_only, NULL, 0, 0, &r);
	expect_error(&r, 405, "method GET not allowed");
	resp_free(&r);
	request("DELETE", "/v1/public", NULL, NULL, 0, 0, &r);
	expect_error(&r, 405, "method DELETE not allowed");
	resp_free(&r);
	/* the built-in routes are in the table too */
	request("POST", API_HEALTHZ, NULL, "{}", 2, 0, &r);
	expect_error(&r, 405, "method POST not allowed");
	resp_free(&r);
	assert_int_equal(http_count(405) - before, 3);
}

static void
test_unauthorized(void **state)
{
	static const char *const wrong[] = {
		"Authorization: Bearer " SECRET "x", NULL };
	static const char *const shorter[] = {
		"Authorization: Bearer httpd-test-secret-4", NULL };
	static const char *const scheme[] = {
		"Authorization: Basic " SECRET, NULL };
	static const char *const lower[] = {
		"Authorization: bearer " SECRET, NULL };
	static const char *const empty[] = { "Authorization: Bearer ", NULL };
	static const char *const *const bad[] = { NULL, wrong, shorter,
	    scheme, lower, empty };
	int64_t before = http_count(401);
	struct resp r;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(bad); i++) {
		request("GET", "/v1/private", bad[i], NULL, 0, 0, &r);
		expect_error(&r, 401, "missing or wrong credentials");
		assert_string_not_equal(strbuf_str(r.body), "private");
		resp_free(&r);
	}
	/* a JSON route checks credentials before looking at the body */
	request("POST", "/v1/echo", NULL, "not json", 8, 0, &r);
	expect_error(&r, 401, "credentials");
	resp_free(&r);
	/* and before the size */
	{
		char big[MAX_BODY + 10];

		memset(big, 'x', sizeof(big));
		request("POST", "/v1/small", NULL, big, sizeof(big), 0, &r);
		expect_error(&r, 401, "credentials");
		resp_free(&r);
	}
	assert_int_equal(http_count(401) - before, (int64_t)NELEM(bad) + 2);
	/* the right secret works */
	request("GET", "/v1/private", auth_only, NULL, 0, 0, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(strbuf_str(r.body), "private");
	resp_free(&r);
}

static void
test_public_route(void **state)
{
	static const char *const hdr[] = { "X-Test: hello", NULL };
	struct resp r;

	(void)state;
	request("GET", "/v1/public?q=a%20b&z=1", hdr, NULL, 0, 0, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(strbuf_str(r.body), "public q=a b h=hello");
	assert_non_null(strcasestr(strbuf_str(r.headers),
	    "\r\nContent-Type: text/plain\r\n"));
	resp_free(&r);
	request("GET", "/v1/public", NULL, NULL, 0, 0, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(strbuf_str(r.body), "public q=(none) h=(none)");
	resp_free(&r);
}

static void
test_prefix_route_and_headers(void **state)
{
	struct resp r;

	(void)state;
	request("GET", "/v1/files/a/b.txt", NULL, NULL, 0, 0, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(strbuf_str(r.body), "/v1/files/a/b.txt");
	resp_free(&r);
	request("GET", "/v1/headers", NULL, NULL, 0, 0, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strcasestr(strbuf_str(r.headers),
	    "\r\nAuth-Status: OK\r\n"));
	assert_non_null(strcasestr(strbuf_str(r.headers),
	    "\r\nAuth-Server: 127.0.0.1\r\n"));
	resp_free(&r);
}

/* Bodies. */

static void
test_body_too_large_declared(void **state)
{
	int64_t before = http_count(413);
	char big[MAX_BODY + 1];
	struct resp r;

	(void)state;
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[MAX_BODY - 1] = '}';
	/* exactly the bound is fine ... */
	request("POST", "/v1/echo", auth_json, big, MAX_BODY, 0, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	/* ... one byte more is not, whatever the body says */
	request("POST", "/v1/echo", auth_json, big, MAX_BODY + 1, 0, &r);
	expect_error(&r, 413, "body larger than 4096 bytes");
	resp_free(&r);
	/* a route's own bound */
	request("POST", "/v1/small", auth_only, "0123456789abcdef", 16, 0,
	    &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_integer_value(json_object_get(r.json, "len")),
	    16);
	resp_free(&r);
	request("POST", "/v1/small", auth_only, "0123456789abcdefg", 17, 0,
	    &r);
	expect_error(&r, 413, "body larger than 16 bytes");
	resp_free(&r);
	assert_int_equal(http_count(413) - before, 2);
}

static void
test_body_too_large_chunked(void **state)
{
	char big[3 * MAX_BODY];
	struct resp r;

	(void)state;
	memset(big, 'x', sizeof(big));
	/* no Content-Length: counted while it arrives */
	request("POST", "/v1/small", auth_only, big, 17, 1, &r);
	expect_error(&r, 413, "body larger than 16 bytes");
	assert_null(strcasestr(strbuf_str(r.headers), "Content-Length: 17"));
	resp_free(&r);
	request("POST", "/v1/small", auth_only, big, sizeof(big), 1, &r);
	expect_error(&r, 413, "body larger than 16 bytes");
	resp_free(&r);
	request("POST", "/v1/echo", auth_json, big, sizeof(big), 1, &r);
	expect_error(&r, 413, "body larger than 4096 bytes");
	resp_free(&r);
	/* a chunked body within the bound arrives whole */
	request("POST", "/v1/small", auth_only, "chunked-body", 12, 1, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json,
	    "body")), "chunked-body");
	resp_free(&r);
	request("POST", "/v1/echo", auth_json, "{\"k\": [1, 2]}", 13, 1, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(json_array_size(json_object_get(json_object_get(
	    r.json, "body"), "k")), 2);
	resp_free(&r);
}

/* raw_exchange - send text on a fresh connection; the reply (allocated)
 * read until the server closes, or ms pass without data. */
static char *
raw_exchange(const char *text, size_t len, int ms)
{
	struct sockaddr_in sin;
	struct strbuf *sb = strbuf_new(0);
	struct pollfd pfd;
	char buf[4096];
	ssize_t n;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd != -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)server_port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (poll(&pfd, 1, ms) == 1) {
		if ((n = read(fd, buf, sizeof(buf))) <= 0)
			break;
		strbuf_append(sb, buf, (size_t)n);
	}
	close(fd);
	return strbuf_detach(sb, NULL);
}

static void
test_body_too_large_refused_early(void **state)
{
	static const char req[] =
	    "POST /v1/small HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\n"
	    "Authorization: Bearer " SECRET "\r\n"
	    "Content-Length: 100000000\r\n"
	    "Expect: 100-continue\r\n"
	    "\r\n";
	char *reply;

	(void)state;
	/* 100 MB declared, nothing sent: the answer must not wait for it */
	reply = raw_exchange(req, sizeof(req) - 1, 2000);
	if (strncmp(reply, "HTTP/1.1 413", 12) != 0)
		fail_msg("expected an immediate 413, got: %.60s", reply);
	free(reply);
}

static void
test_wrong_content_type(void **state)
{
	static const char *const text[] = { "Authorization: Bearer " SECRET,
	    "Content-Type: text/plain", NULL };
	static const char *const jsonp[] = { "Authorization: Bearer " SECRET,
	    "Content-Type: application/jsonp", NULL };
	static const char *const form[] = { "Authorization: Bearer " SECRET,
	    "Content-Type: application/x-www-form-urlencoded", NULL };
	static const char *const charset[] = { "Authorization: Bearer "
	    SECRET, "Content-Type: application/json; charset=utf-8", NULL };
	static const char *const upper[] = { "Authorization: Bearer "
	    SECRET, "Content-Type: Application/JSON", NULL };
	int64_t before = http_count(415);
	struct resp r;

	(void)state;
	request("POST", "/v1/echo", text, "{}", 2, 0, &r);
	expect_error(&r, 415, "content type must be application/json");
	resp_free(&r);
	request("POST", "/v1/echo", jsonp, "{}", 2, 0, &r);
	expect_error(&r, 415, "application/json");
	resp_free(&r);
	/* curl's default for a POST body */
	request("POST", "/v1/echo", auth_only, "{}", 2, 0, &r);
	expect_error(&r, 415, "application/json");
	resp_free(&r);
	request("POST", "/v1/echo", form, "{}", 2, 0, &r);
	expect_error(&r, 415, "application/json");
	resp_free(&r);
	assert_int_equal(http_count(415) - before, 4);
	/* parameters and case are fine */
	request("POST", "/v1/echo", charset, "{}", 2, 0, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	request("POST", "/v1/echo", upper, "{}", 2, 0, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

static void
test_malformed_json(void **state)
{
	static const struct { const char *body; const char *want; } bad[] = {
		{ "", "malformed JSON" },
		{ "{", "malformed JSON" },
		{ "{\"a\": }", "malformed JSON" },
		{ "{} x", "malformed JSON" },
		{ "{}{}", "malformed JSON" },
		{ "{\"a\": 1} // comment", "malformed JSON" },
		{ "{\"a\": 1, \"a\": 2}", "malformed JSON" },
		{ "{\"a\": {\"b\": 1, \"b\": 1}}", "malformed JSON" },
		{ "[1, 2]", "not an object" },
		{ "\"text\"", "malformed JSON" },
		{ "42", "malformed JSON" },
		{ "null", "malformed JSON" },
		{ "{\"a\": \"\xff\"}", "malformed JSON" },
		{ "{\"a\": NaN}", "malformed JSON" },
	};
	int64_t before = http_count(400);
	struct resp r;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(bad); i++) {
		request("POST", "/v1/echo", auth_json, bad[i].body,
		    strlen(bad[i].body), 0, &r);
		if (r.status != 400)
			fail_msg("body %zu (%s) got %ld", i, bad[i].body,
			    r.status);
		expect_error(&r, 400, bad[i].want);
		resp_free(&r);
	}
	assert_int_equal(http_count(400) - before, (int64_t)NELEM(bad));
	/* trailing white space is not garbage */
	request("POST", "/v1/echo", auth_json, "{\"a\": 1}\r\n\t ", 12, 0,
	    &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

static void
test_strict_unpack(void **state)
{
	struct resp r;

	(void)state;
	request("POST", "/v1/strict", auth_json, "{\"name\": \"x\", \"n\": 3}",
	    21, 0, &r);
	assert_int_equal(r.status, 201);
	assert_string_equal(json_string_value(json_object_get(r.json,
	    "name")), "x");
	assert_int_equal(json_integer_value(json_object_get(r.json, "n")), 3);
	resp_free(&r);
	request("POST", "/v1/strict", auth_json, "{\"name\": \"x\"}", 13, 0,
	    &r);
	assert_int_equal(r.status, 201);
	assert_int_equal(json_integer_value(json_object_get(r.json, "n")),
	    -1);
	resp_free(&r);
	/* extra key, missing key, wrong type */
	request("POST", "/v1/strict", auth_json,
	    "{\"name\": \"x\", \"extra\": 1}", 25, 0, &r);
	expect_error(&r, 400, "bad request: ");
	resp_free(&r);
	request("POST", "/v1/strict", auth_json, "{\"n\": 1}", 8, 0, &r);
	expect_error(&r, 400, "bad request: ");
	resp_free(&r);
	request("POST", "/v1/strict", auth_json, "{\"name\": 5}", 11, 0, &r);
	expect_error(&r, 400, "bad request: ");
	resp_free(&r);
}

static void
test_json_handler_success(void **state)
{
	static const char *const cid[] = { "Authorization: Bearer " SECRET,
	    "Content-Type: application/json",
	    "X-Correlation-Id: 0123abcd-ef", NULL };
	static const char *const badcid[] = { "Authorization: Bearer " SECRET,
	    "Content-Type: application/json",
	    "X-Correlation-Id: <script>", NULL };
	int64_t before = http_count(200);
	struct resp r;
	const char *c;

	(void)state;
	request("POST", "/v1/echo", cid, "{\"x\": [1, {\"y\": null}]}", 23, 0,
	    &r);
	assert_int_equal(r.status, 200);
	assert_non_null(r.json);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(
	    json_object_get(r.json, "body"), "x"), 0)), 1);
	assert_string_equal(json_string_value(json_object_get(r.json,
	    "method")), "POST");
	assert_string_equal(json_string_value(json_object_get(r.json,
	    "path")), "/v1/echo");
	assert_string_equal(json_string_value(json_object_get(r.json,
	    "cid")), "0123abcd-ef");
	assert_string_equal(json_string_value(json_object_get(r.json,
	    "peer")), "127.0.0.1");
	assert_non_null(strcasestr(strbuf_str(r.headers),
	    "\r\nContent-Type: application/json\r\n"));
	resp_free(&r);
	/* a correlation id that is not hex is replaced by a fresh one */
	request("POST", "/v1/echo", badcid, "{}", 2, 0, &r);
	c = json_string_value(json_object_get(r.json, "cid"));
	assert_non_null(c);
	assert_int_equal(strlen(c), 16);
	assert_int_equal(strspn(c, "0123456789abcdef"), 16);
	resp_free(&r);
	assert_int_equal(http_count(200) - before, 2);
}

static void
test_handler_misbehaviour(void **state)
{
	struct resp r;

	(void)state;
	request("GET", "/v1/fail", auth_only, NULL, 0, 0, &r);
	expect_error(&r, 500, "internal error");
	resp_free(&r);
	request("GET", "/v1/noreply", auth_only, NULL, 0, 0, &r);
	expect_error(&r, 500, "handler gave no reply");
	resp_free(&r);
	/* the first reply wins; the second is refused */
	second_reply_rc = 0;
	request("GET", "/v1/twice", auth_only, NULL, 0, 0, &r);
	assert_int_equal(r.status, 202);
	assert_string_equal(strbuf_str(r.body), "first");
	assert_int_equal(second_reply_rc, -1);
	resp_free(&r);
}

/* With the real client. */

static void
test_with_httpc(void **state)
{
	struct httpc *c, *anon;
	json_t *body, *resp = NULL;
	long status = 0;

	(void)state;
	c = httpc_new(base_url, SECRET, 5000);
	anon = httpc_new(base_url, NULL, 5000);
	body = json_pack("{s:s, s:i}", "name", "list-a", "n", 9);
	assert_int_equal(httpc_call(c, "POST", "/v1/strict", body, 0, &status,
	    &resp), 0);
	assert_int_equal(status, 201);
	assert_string_equal(json_string_value(json_object_get(resp, "name")),
	    "list-a");
	json_decref(resp);
	assert_int_equal(httpc_call(anon, "POST", "/v1/strict", body, 0,
	    &status, &resp), 0);
	assert_int_equal(status, 401);
	assert_string_equal(json_string_value(json_object_get(resp, F_ERROR)),
	    "missing or wrong credentials");
	json_decref(resp);
	json_decref(body);
	httpc_free(c);
	httpc_free(anon);
}

static void
test_healthz(void **state)
{
	struct httpc *c = httpc_new(base_url, NULL, 5000);
	json_t *resp = NULL;
	long status = 0;

	(void)state;
	health_bad = 0;
	assert_int_equal(httpc_call(c, "GET", API_HEALTHZ, NULL,
	    HTTPC_IDEMPOTENT, &status, &resp), 0);
	assert_int_equal(status, 200);
	assert_string_equal(json_string_value(json_object_get(resp, "status")),
	    "ok");
	assert_string_equal(json_string_value(json_object_get(resp, "daemon")),
	    "testd");
	assert_string_equal(json_string_value(json_object_get(resp,
	    "version")), GROUPS_VERSION);
	assert_true(json_integer_value(json_object_get(resp, "uptime_s")) >=
	    0);
	json_decref(resp);

	health_bad = 1;
	/* not idempotent here: a 503 would be retried */
	assert_int_equal(httpc_call(c, "GET", API_HEALTHZ, NULL, 0, &status,
	    &resp), 0);
	assert_int_equal(status, 503);
	assert_string_equal(json_string_value(json_object_get(resp, "status")),
	    "unhealthy");
	assert_string_equal(json_string_value(json_object_get(resp, F_ERROR)),
	    "database unreachable");
	json_decref(resp);
	health_bad = 0;
	httpc_free(c);
}

static void
test_metrics_endpoint(void **state)
{
	struct httpc *c = httpc_new(base_url, NULL, 5000);
	struct strbuf *out = strbuf_new(0);
	struct resp r;
	long status = 0;
	char line[96];
	int64_t n404;

	(void)state;
	request("GET", "/v1/metrics-404", NULL, NULL, 0, 0, &r);
	resp_free(&r);
	n404 = http_count(404);
	assert_int_equal(httpc_get_raw(c, API_METRICS, 0, &status, out,
	    1 << 20), 0);
	assert_int_equal(status, 200);
	assert_non_null(strstr(strbuf_str(out), "# TYPE http_requests_total "
	    "counter\n"));
	snprintf(line, sizeof(line), "\nhttp_requests_total{code=\"404\"} "
	    "%lld\n", (long long)n404);
	assert_non_null(strstr(strbuf_str(out), line));
	assert_non_null(strstr(strbuf_str(out),
	    "\nprocess_start_time_seconds "));
	assert_non_null(strstr(strbuf_str(out), "\nhttp_requests_in_flight "));
	strbuf_free(out);
	/* no credentials needed, and it is the Prometheus text format */
	request("GET", API_METRICS, NULL, NULL, 0, 0, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strcasestr(strbuf_str(r.headers),
	    "\r\nContent-Type: text/plain; version=0.0.4\r\n"));
	resp_free(&r);
	httpc_free(c);
}

/* Streaming. */

struct lines {
	char	 got[8][32];
	int	 n;
};

static int
on_line(void *ctx, const char *line, size_t len)
{
	struct lines *l = ctx;

	if (l->n < 8)
		snprintf(l->got[l->n], sizeof(l->got[0]), "%.*s", (int)len,
		    line);
	l->n++;
	pthread_mutex_lock(&st.mu);
	st.lines_seen++;
	pthread_cond_broadcast(&st.cv);
	pthread_mutex_unlock(&st.mu);
	return 0;
}

/* wait_for - wait (bounded) until *v >= n under st.mu; 0 or -1. */
static int
wait_for(const int *v, int n)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&st.mu);
	while (*v < n && rc == 0)
		rc = pthread_cond_timedwait(&st.cv, &st.mu, &until);
	pthread_mutex_unlock(&st.mu);
	return *v >= n ? 0 : -1;
}

/* wait_parked_or_freed - bounded wait until fn parked or free_fn ran. */
static int
wait_parked_or_freed(void)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&st.mu);
	while (!st.parked && st.frees == 0 && rc == 0)
		rc = pthread_cond_timedwait(&st.cv, &st.mu, &until);
	rc = (st.parked || st.frees > 0) ? 0 : -1;
	pthread_mutex_unlock(&st.mu);
	return rc;
}

/* feed - once the stream is parked, add text (or end it) and wake it.
 * The wake happens without st.mu held: fn takes it under the stream's
 * lock, which wake takes too. */
static int
feed(const char *text)
{
	struct httpd_stream *s;

	if (wait_for(&st.parked, 1) == -1)
		return -1;
	pthread_mutex_lock(&st.mu);
	st.parked = 0;
	if (text != NULL)
		strbuf_puts(st.pending, text);
	else
		st.done = 1;
	s = st.s;
	pthread_mutex_unlock(&st.mu);
	if (s == NULL)
		return -1;
	httpd_stream_wake(s);
	return 0;
}

struct stream_client {
	pthread_t	 t;
	struct lines	 lines;
	long		 status;
	int		 rc;
};

static void *
stream_client_main(void *arg)
{
	struct stream_client *sc = arg;
	struct httpc *c = httpc_new(base_url, SECRET, 5000);

	sc->rc = httpc_stream_lines(c, "/v1/stream", 10000, on_line,
	    &sc->lines, &sc->status);
	httpc_free(c);
	return NULL;
}

static void
stream_reset(void)
{
	pthread_mutex_lock(&st.mu);
	if (st.pending == NULL)
		st.pending = strbuf_new(0);
	strbuf_reset(st.pending);
	st.s = NULL;
	st.done = st.parked = st.parks = st.frees = st.lines_seen = 0;
	pthread_mutex_unlock(&st.mu);
}

static void
test_stream(void **state)
{
	struct stream_client sc;
	int64_t streams_before;

	(void)state;
	stream_reset();
	memset(&sc, 0, sizeof(sc));
	streams_before = metric_value(metric_gauge("http_streams_open",
	    "streaming responses open", NULL));
	assert_int_equal(pthread_create(&sc.t, NULL, stream_client_main, &sc),
	    0);
	/* nothing yet: the stream parks */
	assert_int_equal(feed("{\"n\": 1}\n"), 0);
	assert_int_equal(wait_for(&st.lines_seen, 1), 0);
	assert_int_equal(metric_value(metric_gauge("http_streams_open",
	    "streaming responses open", NULL)) - streams_before, 1);
	/* parks again, then two lines in one piece */
	assert_int_equal(feed("{\"n\": 2}\n{\"n\": 3}\n"), 0);
	assert_int_equal(wait_for(&st.lines_seen, 3), 0);
	/* a line split over two wakes arrives whole */
	assert_int_equal(feed("{\"n\":"), 0);
	assert_int_equal(feed(" 4}\n"), 0);
	assert_int_equal(wait_for(&st.lines_seen, 4), 0);
	/* end */
	assert_int_equal(feed(NULL), 0);
	pthread_join(sc.t, NULL);
	assert_int_equal(sc.rc, 0);
	assert_int_equal(sc.status, 200);
	assert_int_equal(sc.lines.n, 4);
	assert_string_equal(sc.lines.got[0], "{\"n\": 1}");
	assert_string_equal(sc.lines.got[1], "{\"n\": 2}");
	assert_string_equal(sc.lines.got[2], "{\"n\": 3}");
	assert_string_equal(sc.lines.got[3], "{\"n\": 4}");
	/* parked between pieces rather than spinning */
	assert_true(st.parks >= 5);
	assert_true(st.parks < 50);
	assert_int_equal(wait_for(&st.frees, 1), 0);
	assert_int_equal(st.frees, 1);
	assert_int_equal(metric_value(metric_gauge("http_streams_open",
	    "streaming responses open", NULL)), streams_before);
}

static void
test_stream_client_leaves(void **state)
{
	struct sockaddr_in sin;
	static const char req[] = "GET /v1/stream HTTP/1.1\r\n"
	    "Host: 127.0.0.1\r\nAuthorization: Bearer " SECRET "\r\n\r\n";
	char buf[512];
	struct pollfd pfd = { .events = POLLIN };
	struct httpd_stream *s;
	int fd, i;

	(void)state;
	stream_reset();
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)server_port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	assert_int_equal(write(fd, req, sizeof(req) - 1),
	    (ssize_t)(sizeof(req) - 1));
	assert_int_equal(feed("first\n"), 0);
	pfd.fd = fd;
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_true(read(fd, buf, sizeof(buf)) > 0);
	assert_int_equal(wait_for(&st.parked, 1), 0);
	/* the client goes away while the stream is parked */
	close(fd);
	/*
	 * A parked connection is not watched, so the server learns of it when
	 * it next writes: the first write after the peer's close may still
	 * succeed (TCP needs the peer's RST), a later one fails.  Keep
	 * feeding while the stream parks again, a few times at most.
	 */
	for (i = 0; i < 5; i++) {
		if (wait_parked_or_freed() == -1)
			fail_msg("stream neither parked nor freed");
		pthread_mutex_lock(&st.mu);
		if (st.frees > 0) {
			pthread_mutex_unlock(&st.mu);
			break;
		}
		st.parked = 0;
		strbuf_puts(st.pending, "more\n");
		s = st.s;
		pthread_mutex_unlock(&st.mu);
		httpd_stream_wake(s);
	}
	/* free_fn ran exactly once, and nothing woke the stream after it */
	assert_int_equal(wait_for(&st.frees, 1), 0);
	assert_int_equal(st.frees, 1);
	assert_null(st.s);
	assert_true(i < 5);
}

/* Start and stop. */

static void
test_start_errors(void **state)
{
	struct httpd_config hc = {
		.name = "bad", .host = "localhost", .port = 0,
		.routes = routes, .threads = 1,
	};

	(void)state;
	/* only literal addresses */
	assert_null(httpd_start(&hc));
	hc.host = "256.0.0.1";
	assert_null(httpd_start(&hc));
	hc.host = "::1";
	{
		struct httpd *h6 = httpd_start(&hc);

		/* IPv6 loopback may be absent in a container */
		if (h6 != NULL) {
			assert_true(httpd_port(h6) > 0);
			httpd_stop(h6);
		}
	}
	httpd_stop(NULL);
}

static void
test_port_in_use(void **state)
{
	struct httpd_config hc = {
		.name = "second", .host = "127.0.0.1", .port = 0,
		.routes = routes, .threads = 1,
	};
	struct httpd *h2;

	(void)state;
	hc.port = server_port;
	h2 = httpd_start(&hc);
	if (h2 != NULL) {
		httpd_stop(h2);
		fail_msg("a second server started on busy port %d",
		    server_port);
	}
}

static void
test_stop_with_parked_stream(void **state)
{
	struct httpd_config hc = {
		.name = "stopper", .host = "127.0.0.1", .port = 0,
		.routes = routes, .secret = SECRET, .threads = 2,
	};
	struct stream_client sc;
	struct httpd *h;
	char saved[64];

	(void)state;
	stream_reset();
	h = httpd_start(&hc);
	assert_non_null(h);
	memcpy(saved, base_url, sizeof(saved));
	snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%d",
	    httpd_port(h));
	memset(&sc, 0, sizeof(sc));
	assert_int_equal(pthread_create(&sc.t, NULL, stream_client_main, &sc),
	    0);
	assert_int_equal(feed("only\n"), 0);
	assert_int_equal(wait_for(&st.lines_seen, 1), 0);
	assert_int_equal(wait_for(&st.parked, 1), 0);
	/* stopping ends the parked stream rather than hanging on it */
	httpd_stop(h);
	pthread_join(sc.t, NULL);
	memcpy(base_url, saved, sizeof(saved));
	assert_int_equal(st.frees, 1);
	assert_int_equal(sc.lines.n, 1);
	assert_string_equal(sc.lines.got[0], "only");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_method_not_allowed),
		cmocka_unit_test(test_unauthorized),
		cmocka_unit_test(test_public_route),
		cmocka_unit_test(test_prefix_route_and_headers),
		cmocka_unit_test(test_body_too_large_declared),
		cmocka_unit_test(test_body_too_large_chunked),
		cmocka_unit_test(test_body_too_large_refused_early),
		cmocka_unit_test(test_wrong_content_type),
		cmocka_unit_test(test_malformed_json),
		cmocka_unit_test(test_strict_unpack),
		cmocka_unit_test(test_json_handler_success),
		cmocka_unit_test(test_handler_misbehaviour),
		cmocka_unit_test(test_with_httpc),
		cmocka_unit_test(test_healthz),
		cmocka_unit_test(test_metrics_endpoint),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_stream_client_leaves),
		cmocka_unit_test(test_start_errors),
		cmocka_unit_test(test_port_in_use),
		cmocka_unit_test(test_stop_with_parked_stream),
	};

	/* a hang is a failure, not a stuck build */
	alarm(60);
	/* GROUPS_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("GROUPS_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("GROUPS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
