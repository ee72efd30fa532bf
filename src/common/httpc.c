/* SPDX-License-Identifier: MIT */
/*
 * httpc.c - JSON over HTTP to the other daemons, on libcurl.
 *
 * Each thread has its own easy handle per client (a thread-specific key),
 * reset before every call and kept with its connection cache, so calls
 * to a peer reuse keep-alive connections.  libcurl does not support
 * sharing one connection cache between concurrent threads (CURLSHOPT_SHARE
 * with CURL_LOCK_DATA_CONNECT): with 32 smtpd workers calling messageserver
 * at once that corrupted the heap.  Retries happen only for calls the
 * caller marked idempotent: a POST that reached the server and timed out
 * may have been applied.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "api_proto.h"
#include "httpc.h"
#include "log.h"
#include "xalloc.h"

#define HTTPC_RETRIES		2
#define HTTPC_MAX_RESPONSE	(16 * 1024 * 1024)

struct httpc {
	char		*base;
	char		*auth;		/* "Authorization: Bearer ..." or NULL */
	long		 timeout_ms;
	pthread_key_t	 easy;		/* this thread's CURL handle */
};

static pthread_once_t httpc_once = PTHREAD_ONCE_INIT;

static void
httpc_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* httpc_easy_free - a thread ended: its handle and connections go. */
static void
httpc_easy_free(void *e)
{
	curl_easy_cleanup(e);
}

struct httpc *
httpc_new(const char *base_url, const char *secret, long timeout_ms)
{
	struct httpc *c = xcalloc(1, sizeof(*c));

	pthread_once(&httpc_once, httpc_global_init);
	c->base = xstrdup(base_url);
	if (secret != NULL)
		c->auth = xasprintf("%s: %s%s", API_AUTH_HEADER,
		    API_AUTH_SCHEME, secret);
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
	if (pthread_key_create(&c->easy, httpc_easy_free) != 0)
		panic("httpc: no thread-specific key left");
	return c;
}

struct httpc *
httpc_free(struct httpc *c)
{
	CURL *e;

	if (c == NULL)
		return NULL;
	/* the calling thread's handle; other threads' went when they ended
	 * (callers stop the threads that use a client before freeing it) */
	if ((e = pthread_getspecific(c->easy)) != NULL)
		curl_easy_cleanup(e);
	pthread_key_delete(c->easy);
	free(c->base);
	free(c->auth);
	free(c);
	return NULL;
}

struct httpc_sink {
	struct strbuf	*sb;
	size_t		 max;
	httpc_line_fn	 fn;		/* streaming: per line */
	void		*ctx;
	int		 stopped;
};

static size_t
httpc_write(char *p, size_t size, size_t n, void *u)
{
	struct httpc_sink *s = u;
	size_t len = size * n, start, i;

	if (s->fn == NULL) {
		if (s->sb->len + len > s->max)
			return 0;	/* aborts the transfer */
		strbuf_append(s->sb, p, len);
		return len;
	}
	/* Streaming: hand over complete lines, keep the partial one. */
	if (s->sb->len + len > s->max)
		return 0;
	strbuf_append(s->sb, p, len);
	start = 0;
	for (i = 0; i < s->sb->len; i++) {
		if (s->sb->buf[i] != '\n')
			continue;
		if (s->fn(s->ctx, s->sb->buf + start, i - start) != 0) {
			s->stopped = 1;
			return 0;
		}
		start = i + 1;
	}
	if (start > 0) {
		memmove(s->sb->buf, s->sb->buf + start, s->sb->len - start);
		strbuf_truncate(s->sb, s->sb->len - start);
	}
	return len;
}

/* httpc_perform - one attempt; returns the CURLcode. */
static CURLcode
httpc_perform(struct httpc *c, const char *method, const char *path,
    const char *body, long timeout_ms, struct httpc_sink *sink, long *status)
{
	struct curl_slist *hdrs = NULL;
	CURLcode rc;
	CURL *e;
	char *url;

	if ((e = pthread_getspecific(c->easy)) != NULL)
		curl_easy_reset(e);	/* keeps its connections */
	else if ((e = curl_easy_init()) == NULL ||
	    pthread_setspecific(c->easy, e) != 0) {
		curl_easy_cleanup(e);
		return CURLE_OUT_OF_MEMORY;
	}
	url = xasprintf("%s%s", c->base, path);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	    timeout_ms > 0 && timeout_ms < 3000 ? timeout_ms : 3000L);
	if (timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, httpc_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, sink);
	if (c->auth != NULL)
		hdrs = curl_slist_append(hdrs, c->auth);
	if (body != NULL) {
		hdrs = curl_slist_append(hdrs,
		    "Content-Type: " API_JSON_TYPE);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "GET") == 0)
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	rc = curl_easy_perform(e);
	*status = 0;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(hdrs);
	free(url);
	return rc;
}

static int
retryable(CURLcode rc, long status)
{
	if (rc != CURLE_OK)
		return 1;
	return status == 502 || status == 503 || status == 504;
}

static void
httpc_backoff(int attempt)
{
	struct timespec ts = { 0, 100000000L * (1L << attempt) };

	nanosleep(&ts, NULL);
}

int
httpc_call(struct httpc *c, const char *method, const char *path,
    const json_t *body, int flags, long *status, json_t **resp)
{
	struct httpc_sink sink = { 0 };
	char *text = NULL;
	CURLcode rc = CURLE_OK;
	long st = 0;
	int attempt, tries = (flags & HTTPC_IDEMPOTENT) ? 1 + HTTPC_RETRIES : 1;

	if (resp != NULL)
		*resp = NULL;
	if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL) {
		if (!(flags & HTTPC_NOLOG))
			log_err("httpc: cannot encode request to %s%s",
			    c->base, path);
		return -1;
	}
	sink.sb = strbuf_new(1024);
	sink.max = HTTPC_MAX_RESPONSE;
	for (attempt = 0; attempt < tries; attempt++) {
		if (attempt > 0)
			httpc_backoff(attempt - 1);
		strbuf_reset(sink.sb);
		rc = httpc_perform(c, method, path, text, c->timeout_ms, &sink,
		    &st);
		if (!retryable(rc, st))
			break;
	}
	free(text);
	if (status != NULL)
		*status = st;
	if (rc != CURLE_OK) {
		if (!(flags & HTTPC_NOLOG))
			log_warnx("httpc: %s %s%s: %s", method, c->base, path,
			    curl_easy_strerror(rc));
		strbuf_free(sink.sb);
		return -1;
	}
	if (resp != NULL && sink.sb->len > 0)
		*resp = json_loadb(sink.sb->buf, sink.sb->len, 0, NULL);
	strbuf_free(sink.sb);
	return 0;
}

int
httpc_get_raw(struct httpc *c, const char *path, int flags, long *status,
    struct strbuf *out, size_t max)
{
	struct httpc_sink sink = { .sb = out, .max = max };
	CURLcode rc = CURLE_OK;
	long st = 0;
	int attempt, tries = (flags & HTTPC_IDEMPOTENT) ? 1 + HTTPC_RETRIES : 1;

	for (attempt = 0; attempt < tries; attempt++) {
		if (attempt > 0)
			httpc_backoff(attempt - 1);
		strbuf_reset(out);
		rc = httpc_perform(c, "GET", path, NULL, c->timeout_ms, &sink,
		    &st);
		if (!retryable(rc, st))
			break;
	}
	if (status != NULL)
		*status = st;
	if (rc != CURLE_OK) {
		if (!(flags & HTTPC_NOLOG))
			log_warnx("httpc: GET %s%s: %s", c->base, path,
			    curl_easy_strerror(rc));
		return -1;
	}
	return 0;
}

int
httpc_stream_lines(struct httpc *c, const char *path, long timeout_ms,
    httpc_line_fn fn, void *ctx, long *status)
{
	struct httpc_sink sink = { 0 };
	CURLcode rc;
	long st = 0;

	sink.sb = strbuf_new(4096);
	sink.max = HTTPC_MAX_RESPONSE;
	sink.fn = fn;
	sink.ctx = ctx;
	rc = httpc_perform(c, "GET", path, NULL, timeout_ms, &sink, &st);
	/* A last line without a newline still counts. */
	if (rc == CURLE_OK && sink.sb->len > 0 && !sink.stopped)
		fn(ctx, sink.sb->buf, sink.sb->len);
	strbuf_free(sink.sb);
	if (status != NULL)
		*status = st;
	if (sink.stopped)
		return 0;
	if (rc == CURLE_OPERATION_TIMEDOUT && timeout_ms > 0 && st == 200)
		return 0;
	return rc == CURLE_OK ? 0 : -1;
}

char *
httpc_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0), *r;

	if (e == NULL)
		panic("out of memory in httpc_escape");
	r = xstrdup(e);
	curl_free(e);
	return r;
}
