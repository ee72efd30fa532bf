/* SPDX-License-Identifier: MIT */
/*
 * httpd.c - the HTTP server of every daemon, on libmicrohttpd.
 *
 * One epoll thread (or a pool of them) accepts and parses; a request's body
 * is gathered up to the route's bound, then the route's handler runs once
 * with the whole request.  Everything a client can get wrong (unknown path,
 * wrong method, missing secret, oversize or malformed body) is answered
 * here with a JSON error, so handlers see only well-formed input.  Streams
 * park their connection (MHD suspend) while they have nothing to send, and
 * so do deferred replies (httpd_defer) until another thread answers them.
 */
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>
#include <sodium.h>

#include "api_proto.h"
#include "bounds.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "token.h"
#include "daemon.h"

struct httpd {
	struct MHD_Daemon	*mhd;
	struct httpd_defer	*defers;	/* unanswered; under defer_mu */
	struct httpd_config	 conf;		/* routes borrowed */
	char			*name;
	char			*secret;
	int			 port;
	time_t			 started;
	pthread_mutex_t		 mu;		/* guards streams */
	struct httpd_stream	*streams;
	atomic_int		 stopping;
	struct metric		*m_inflight;
	struct metric		*m_streams;
};

struct httpd_req {
	struct httpd		*h;
	struct MHD_Connection	*conn;
	const struct httpd_route *route;
	unsigned		 early;		/* status decided before body */
	const char		*method;
	const char		*path;
	struct strbuf		*body;
	size_t			 max_body;
	int			 too_big;
	json_t			*json;
	int			 replied;
	struct httpd_defer	*defer;		/* a deferred reply */
	char			 cid[40];
	char			 peer[INET6_ADDRSTRLEN];
};

struct httpd_stream {
	struct httpd		*h;
	struct MHD_Connection	*conn;
	pthread_mutex_t		 mu;
	int			 suspended;
	httpd_stream_fn		 fn;
	void			*ctx;
	void			(*free_fn)(void *);
	struct httpd_stream	*next, *prev;
};

/*
 * A deferred reply.  Its connection is suspended from httpd_defer until
 * the answer is in; whoever resumes it (the answer, or httpd_stop giving
 * up) sets resumed first, under defer_mu, so a connection is resumed once
 * and only while MHD cannot have freed it (a suspended connection is never
 * closed).  Two references: the request's (dropped when MHD ends it) and
 * the answerer's (dropped by httpd_defer_reply_json).
 */
struct httpd_defer {
	struct httpd		*h;		/* NULL once answered or stopped */
	struct MHD_Connection	*conn;		/* NULL once the request ended */
	int			 refs;
	int			 done;		/* the answer is in */
	int			 resumed;
	unsigned		 status;
	char			*body;		/* JSON text, owned */
	struct httpd_defer	*next, *prev;	/* h->defers */
};

static pthread_mutex_t	defer_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	defer_cv = PTHREAD_COND_INITIALIZER;

#define HTTPD_DEFER_WAIT	30	/* s httpd_stop waits for answers */

static int	httpd_builtin_healthz(struct httpd_req *);
static int	httpd_builtin_metrics(struct httpd_req *);

static const struct httpd_route httpd_builtins[] = {
	{ "GET", API_HEALTHZ, httpd_builtin_healthz, HTTPD_PUBLIC, 0 },
	{ "GET", API_METRICS, httpd_builtin_metrics, HTTPD_PUBLIC, 0 },
	HTTPD_ROUTE_END
};

static void
httpd_count(unsigned status)
{
	char labels[32];

	snprintf(labels, sizeof(labels), "code=\"%u\"", status);
	metric_add(metric_counter("http_requests_total",
	    "HTTP requests answered, by status", labels), 1);
}

static int
path_matches(const struct httpd_route *r, const char *path)
{
	if (r->flags & HTTPD_PREFIX)
		return strncmp(path, r->path, strlen(r->path)) == 0;
	return strcmp(path, r->path) == 0;
}

/* httpd_route_find - the route for method+path; *path_known tells a 405
 * from a 404. */
static const struct httpd_route *
httpd_route_find(const struct httpd *h, const char *method, const char *path,
    int *path_known)
{
	const struct httpd_route *tables[2] = { httpd_builtins, h->conf.routes };
	const struct httpd_route *r;
	size_t t;

	*path_known = 0;
	for (t = 0; t < NELEM(tables); t++) {
		if (tables[t] == NULL)
			continue;
		for (r = tables[t]; r->path != NULL; r++) {
			if (!path_matches(r, path))
				continue;
			*path_known = 1;
			if (strcmp(r->method, method) == 0)
				return r;
		}
	}
	return NULL;
}

const char *
httpd_req_method(const struct httpd_req *req)
{
	return req->method;
}

const char *
httpd_req_path(const struct httpd_req *req)
{
	return req->path;
}

const char *
httpd_req_query(const struct httpd_req *req, const char *key)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND,
	    key);
}

const char *
httpd_req_header(const struct httpd_req *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *
httpd_req_body(const struct httpd_req *req, size_t *lenp)
{
	if (lenp != NULL)
		*lenp = req->body ? req->body->len : 0;
	return req->body ? req->body->buf : "";
}

json_t *
httpd_req_json(const struct httpd_req *req)
{
	return req->json;
}

const char *
httpd_req_peer(const struct httpd_req *req)
{
	return req->peer;
}

const char *
httpd_req_cid(struct httpd_req *req)
{
	const char *c;

	if (req->cid[0] == '\0') {
		c = httpd_req_header(req, API_CID_HEADER);
		if (c == NULL || strlen(c) >= sizeof(req->cid) ||
		    strspn(c, "0123456789abcdefABCDEF-") != strlen(c) ||
		    *c == '\0')
			token_random_id(req->cid, 8);
		else
			strlcpy_chk(req->cid, c, sizeof(req->cid));
	}
	return req->cid;
}

int
httpd_reply(struct httpd_req *req, unsigned status, const char *ctype,
    const void *body, size_t len)
{
	return httpd_reply_with(req, status, NULL, ctype, body, len);
}

/* httpd_queue - the response on conn (body copied); 0 or -1. */
static int
httpd_queue(struct MHD_Connection *conn, unsigned status,
    const char *const *headers, const char *ctype, const void *body,
    size_t len)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body,
	    MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return -1;
	if (ctype != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
		    ctype);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	for (; headers != NULL && headers[0] != NULL; headers += 2)
		MHD_add_response_header(resp, headers[0], headers[1]);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	httpd_count(status);
	return ret == MHD_YES ? 0 : -1;
}

int
httpd_reply_with(struct httpd_req *req, unsigned status,
    const char *const *headers, const char *ctype, const void *body,
    size_t len)
{
	if (req->replied) {
		log_err("httpd: second reply to %s %s", req->method, req->path);
		return -1;
	}
	req->replied = 1;
	return httpd_queue(req->conn, status, headers, ctype, body, len);
}

struct httpd_defer *
httpd_defer(struct httpd_req *req)
{
	struct httpd_defer *d;

	if (req->replied) {
		log_err("httpd: deferring %s %s after a reply", req->method,
		    req->path);
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	d->h = req->h;
	d->conn = req->conn;
	d->refs = 2;
	req->replied = 1;
	req->defer = d;
	pthread_mutex_lock(&defer_mu);
	d->next = req->h->defers;
	if (d->next != NULL)
		d->next->prev = d;
	req->h->defers = d;
	pthread_mutex_unlock(&defer_mu);
	/* from inside the handler: MHD parks it once the handler returns,
	 * and a resume that comes first is not lost (MHD cancels both) */
	MHD_suspend_connection(req->conn);
	return d;
}

/* defer_unlink - off its server's list; under defer_mu. */
static void
defer_unlink(struct httpd_defer *d)
{
	if (d->h == NULL)
		return;
	if (d->prev != NULL)
		d->prev->next = d->next;
	else
		d->h->defers = d->next;
	if (d->next != NULL)
		d->next->prev = d->prev;
	d->next = d->prev = NULL;
	d->h = NULL;
	pthread_cond_broadcast(&defer_cv);
}

/* defer_unref - drop one reference; under defer_mu. */
static void
defer_unref(struct httpd_defer *d)
{
	if (--d->refs > 0)
		return;
	free(d->body);
	free(d);
}

void
httpd_defer_reply_json(struct httpd_defer *d, unsigned status, json_t *j)
{
	struct MHD_Connection *conn = NULL;
	char *text = json_dumps(j, JSON_COMPACT);

	json_decref(j);
	if (d == NULL) {
		free(text);
		return;
	}
	if (text == NULL) {
		status = 500;
		text = xstrdup("{\"" F_ERROR "\":\"cannot encode reply\"}");
	}
	pthread_mutex_lock(&defer_mu);
	if (!d->done) {
		d->done = 1;
		d->status = status;
		d->body = text;
		text = NULL;
	}
	defer_unlink(d);
	if (!d->resumed && d->conn != NULL) {
		d->resumed = 1;
		conn = d->conn;
	}
	defer_unref(d);
	pthread_mutex_unlock(&defer_mu);
	free(text);
	/* outside the lock: MHD takes its own, and calls back into us */
	if (conn != NULL)
		MHD_resume_connection(conn);
}

/* defer_send - on the connection's thread, after the resume: queue the
 * answer (or park again if none is in). */
static void
defer_send(struct httpd_req *req)
{
	struct httpd_defer *d = req->defer;
	unsigned status = 0;
	char *body = NULL;

	pthread_mutex_lock(&defer_mu);
	if (d->done) {
		status = d->status;
		body = d->body;
		d->body = NULL;
	} else
		d->resumed = 0;
	pthread_mutex_unlock(&defer_mu);
	if (status == 0) {
		MHD_suspend_connection(req->conn);
		return;
	}
	if (body == NULL)
		return;		/* queued already */
	httpd_queue(req->conn, status, NULL, API_JSON_TYPE, body,
	    strlen(body));
	free(body);
}

int
httpd_reply_json(struct httpd_req *req, unsigned status, json_t *j)
{
	char *s;
	int rc;

	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (s == NULL)
		return httpd_reply_error(req, 500, "cannot encode reply");
	rc = httpd_reply(req, status, API_JSON_TYPE, s, strlen(s));
	free(s);
	return rc;
}

int
httpd_reply_error(struct httpd_req *req, unsigned status, const char *fmt,
    ...)
{
	char reason[512];
	json_t *j;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (status >= 500)
		log_err("httpd: %s %s: %u %s", req->method, req->path, status,
		    reason);
	else
		log_debug("httpd: %s %s from %s: %u %s", req->method,
		    req->path, req->peer, status, reason);
	j = json_object();
	json_object_set_new(j, F_ERROR, json_string(reason));
	return httpd_reply_json(req, status, j);
}

int
httpd_json_unpack(struct httpd_req *req, const char *fmt, ...)
{
	json_error_t err;
	va_list ap;
	int rc;

	if (req->json == NULL)
		return httpd_reply_error(req, 400, "JSON body required"), -1;
	va_start(ap, fmt);
	rc = json_vunpack_ex(req->json, &err, 0, fmt, ap);
	va_end(ap);
	if (rc == -1) {
		httpd_reply_error(req, 400, "bad request: %s", err.text);
		return -1;
	}
	return 0;
}

static int
httpd_builtin_healthz(struct httpd_req *req)
{
	const char *reason = NULL;
	json_t *j;

	if (req->h->conf.health != NULL && req->h->conf.health(&reason) != 0) {
		j = json_pack("{s:s, s:s, s:s}", "status", "unhealthy",
		    "daemon", req->h->name, F_ERROR,
		    reason ? reason : "not ready");
		return httpd_reply_json(req, 503, j);
	}
	j = json_pack("{s:s, s:s, s:s, s:I}", "status", "ok", "daemon",
	    req->h->name, "version", GROUPS_VERSION, "uptime_s",
	    (json_int_t)(time(NULL) - req->h->started));
	return httpd_reply_json(req, 200, j);
}

static int
httpd_builtin_metrics(struct httpd_req *req)
{
	struct strbuf *sb = strbuf_new(4096);
	int rc;

	strbuf_appendf(sb, "# HELP process_start_time_seconds start time\n"
	    "# TYPE process_start_time_seconds gauge\n"
	    "process_start_time_seconds %lld\n", (long long)req->h->started);
	metrics_render(sb);
	rc = httpd_reply(req, 200, "text/plain; version=0.0.4", sb->buf,
	    sb->len);
	strbuf_free(sb);
	return rc;
}

/* httpd_authorized - constant-time check of the bearer secret. */
static int
httpd_authorized(struct httpd_req *req)
{
	const char *a = httpd_req_header(req, API_AUTH_HEADER);
	size_t sl = strlen(API_AUTH_SCHEME), n;

	if (req->h->secret == NULL)
		return 0;
	if (a == NULL || strncmp(a, API_AUTH_SCHEME, sl) != 0)
		return 0;
	a += sl;
	n = strlen(req->h->secret);
	if (strlen(a) != n)
		return 0;
	return sodium_memcmp(a, req->h->secret, n) == 0;
}

static int
is_json_type(const char *ct)
{
	size_t n = strlen(API_JSON_TYPE);

	return ct != NULL && strncasecmp(ct, API_JSON_TYPE, n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* httpd_dispatch - the request is complete: check it and run the handler. */
static void
httpd_dispatch(struct httpd_req *req)
{
	const struct httpd_route *r = req->route;
	json_error_t jerr;
	int known;

	if (r == NULL) {
		httpd_route_find(req->h, req->method, req->path, &known);
		if (known)
			httpd_reply_error(req, 405, "method %s not allowed",
			    req->method);
		else
			httpd_reply_error(req, 404, "no such endpoint");
		return;
	}
	/* Credentials were checked on the first call, before the body. */
	if (req->too_big) {
		log_warnx("httpd: %s %s from %s: body over %zu bytes",
		    req->method, req->path, req->peer, req->max_body);
		httpd_reply_error(req, 413, "body larger than %zu bytes",
		    req->max_body);
		return;
	}
	if (r->flags & HTTPD_JSON) {
		if (!is_json_type(httpd_req_header(req,
		    MHD_HTTP_HEADER_CONTENT_TYPE))) {
			httpd_reply_error(req, 415, "content type must be %s",
			    API_JSON_TYPE);
			return;
		}
		req->json = json_loadb(req->body->buf, req->body->len,
		    JSON_REJECT_DUPLICATES, &jerr);
		if (req->json == NULL || !json_is_object(req->json)) {
			log_warnx("httpd: %s %s from %s: bad JSON: %s",
			    req->method, req->path, req->peer,
			    req->json ? "not an object" : jerr.text);
			httpd_reply_error(req, 400, "malformed JSON: %s",
			    req->json ? "not an object" : jerr.text);
			return;
		}
	}
	metric_add(req->h->m_inflight, 1);
	if (r->fn(req) == -1 && !req->replied)
		httpd_reply_error(req, 500, "internal error");
	metric_add(req->h->m_inflight, -1);
	if (!req->replied)
		httpd_reply_error(req, 500, "handler gave no reply");
}

static void
httpd_peer(struct httpd_req *req)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	strlcpy_chk(req->peer, "?", sizeof(req->peer));
	ci = MHD_get_connection_info(req->conn,
	    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || (sa = ci->client_addr) == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)
		    sa)->sin_addr, req->peer, sizeof(req->peer));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
		    (const void *)sa)->sin6_addr, req->peer,
		    sizeof(req->peer));
}

static enum MHD_Result
httpd_access(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	struct httpd *h = cls;
	struct httpd_req *req = *con_cls;
	const char *cl;
	int known;

	(void)version;
	if (req == NULL) {
		req = xcalloc(1, sizeof(*req));
		req->h = h;
		req->conn = conn;
		req->method = method;
		req->path = url;
		req->route = httpd_route_find(h, method, url, &known);
		req->max_body = h->conf.max_body;
		if (req->route != NULL && req->route->max_body != 0)
			req->max_body = req->route->max_body;
		req->body = strbuf_new(0);
		httpd_peer(req);
		*con_cls = req;
		/* Refuse a declared oversize body before reading it. */
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (req->route == NULL)
			return MHD_YES;		/* 404/405 once complete */
		/* Answer now, without reading a body: MHD sends no
		 * "100 Continue" and closes the connection after. */
		if (!(req->route->flags & HTTPD_PUBLIC) &&
		    !httpd_authorized(req)) {
			log_warnx("httpd: unauthorized %s %s from %s", method,
			    url, req->peer);
			httpd_reply_error(req, 401,
			    "missing or wrong credentials");
			return MHD_YES;
		}
		if (cl != NULL && strtoull(cl, NULL, 10) > req->max_body) {
			req->too_big = 1;
			log_warnx("httpd: %s %s from %s: declared body over "
			    "%zu bytes", method, url, req->peer,
			    req->max_body);
			httpd_reply_error(req, 413, "body larger than %zu bytes",
			    req->max_body);
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (!req->too_big && !req->replied) {
			if (req->body->len + *upload_data_size > req->max_body)
				req->too_big = 1;
			else
				strbuf_append(req->body, upload_data,
				    *upload_data_size);
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (req->defer != NULL) {
		defer_send(req);
		return MHD_YES;
	}
	if (req->replied)
		return MHD_YES;
	httpd_dispatch(req);
	return MHD_YES;
}

static void
httpd_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct httpd_req *req = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (req == NULL)
		return;
	if (req->defer != NULL) {
		pthread_mutex_lock(&defer_mu);
		req->defer->conn = NULL;
		defer_unref(req->defer);
		pthread_mutex_unlock(&defer_mu);
	}
	strbuf_free(req->body);
	json_decref(req->json);
	free(req);
	*con_cls = NULL;
}

static void
httpd_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_info("httpd: %s", msg);
}

/* Streams. */

static ssize_t
httpd_stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct httpd_stream *s = cls;
	ssize_t n;

	(void)pos;
	pthread_mutex_lock(&s->mu);
	if (atomic_load(&s->h->stopping)) {
		pthread_mutex_unlock(&s->mu);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	n = s->fn(s->ctx, buf, max);
	if (n == 0) {
		/* Park the connection; httpd_stream_wake resumes it.  Both
		 * happen under s->mu, so a wake cannot be lost. */
		s->suspended = 1;
		MHD_suspend_connection(s->conn);
	}
	pthread_mutex_unlock(&s->mu);
	if (n < 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return n;
}

static void
httpd_stream_free(void *cls)
{
	struct httpd_stream *s = cls;
	struct httpd *h = s->h;

	if (s->free_fn != NULL)
		s->free_fn(s->ctx);
	pthread_mutex_lock(&h->mu);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		h->streams = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	pthread_mutex_unlock(&h->mu);
	metric_add(h->m_streams, -1);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

struct httpd_stream *
httpd_reply_stream(struct httpd_req *req, unsigned status, const char *ctype,
    httpd_stream_fn fn, void *ctx, void (*free_fn)(void *))
{
	struct httpd *h = req->h;
	struct MHD_Response *resp;
	struct httpd_stream *s;

	if (req->replied)
		return NULL;
	s = xcalloc(1, sizeof(*s));
	s->h = h;
	s->conn = req->conn;
	s->fn = fn;
	s->ctx = ctx;
	s->free_fn = free_fn;
	pthread_mutex_init(&s->mu, NULL);
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
	    httpd_stream_reader, s, httpd_stream_free);
	if (resp == NULL) {
		pthread_mutex_destroy(&s->mu);
		free(s);
		if (free_fn != NULL)
			free_fn(ctx);
		httpd_reply_error(req, 500, "cannot create stream");
		return NULL;
	}
	pthread_mutex_lock(&h->mu);
	s->next = h->streams;
	if (h->streams != NULL)
		h->streams->prev = s;
	h->streams = s;
	pthread_mutex_unlock(&h->mu);
	metric_add(h->m_streams, 1);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	req->replied = 1;
	MHD_queue_response(req->conn, status, resp);
	MHD_destroy_response(resp);
	httpd_count(status);
	return s;
}

void
httpd_stream_wake(struct httpd_stream *s)
{
	pthread_mutex_lock(&s->mu);
	if (s->suspended) {
		s->suspended = 0;
		MHD_resume_connection(s->conn);
	}
	pthread_mutex_unlock(&s->mu);
}

/* Server. */

struct httpd *
httpd_start(const struct httpd_config *conf)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	const union MHD_DaemonInfo *di;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	struct httpd *h;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, conf->host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)conf->port);
	} else if (inet_pton(AF_INET6, conf->host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)conf->port);
		flags |= MHD_USE_IPv6;
	} else {
		log_err("httpd: listen address \"%s\" is not an IP address",
		    conf->host);
		return NULL;
	}
	h = xcalloc(1, sizeof(*h));
	h->conf = *conf;
	h->name = xstrdup(conf->name);
	h->secret = conf->secret ? xstrdup(conf->secret) : NULL;
	if (h->conf.max_body == 0)
		h->conf.max_body = HTTP_MAX_BODY_DEFAULT;
	h->started = time(NULL);
	pthread_mutex_init(&h->mu, NULL);
	h->m_inflight = metric_gauge("http_requests_in_flight",
	    "requests being handled", NULL);
	h->m_streams = metric_gauge("http_streams_open",
	    "streaming responses open", NULL);
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, httpd_access, h,
	    MHD_OPTION_EXTERNAL_LOGGER, httpd_mhd_log, h,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_NOTIFY_COMPLETED, httpd_completed, h,
	    MHD_OPTION_THREAD_POOL_SIZE,
	    (unsigned)(conf->threads > 1 ? conf->threads : 0),
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
	    MHD_OPTION_END);
	if (h->mhd == NULL) {
		log_err("httpd: cannot listen on %s:%d", conf->host,
		    conf->port);
		free(h->name);
		free(h->secret);
		pthread_mutex_destroy(&h->mu);
		free(h);
		return NULL;
	}
	di = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : conf->port;
	return h;
}

int
httpd_port(const struct httpd *h)
{
	return h->port;
}

/* defers_finish - give the answerers of deferred replies a while (they
 * run on the daemon's own threads, which stop after httpd), then answer
 * the rest 503 and resume them: MHD cannot stop with a suspended
 * connection.  Their late answers are dropped. */
static void
defers_finish(struct httpd *h)
{
	struct MHD_Connection *conns[64];
	struct httpd_defer *d;
	struct timespec until;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += HTTPD_DEFER_WAIT;
	pthread_mutex_lock(&defer_mu);
	while (h->defers != NULL &&
	    pthread_cond_timedwait(&defer_cv, &defer_mu, &until) == 0)
		;
	if (h->defers != NULL)
		log_warnx("httpd: stopping with unanswered requests: 503");
	do {
		for (n = 0; h->defers != NULL && n < NELEM(conns); ) {
			d = h->defers;
			d->done = 1;
			d->status = 503;
			d->body = xstrdup("{\"" F_ERROR "\":\"shutting down\"}");
			if (!d->resumed && d->conn != NULL) {
				d->resumed = 1;
				conns[n++] = d->conn;
			}
			defer_unlink(d);
		}
		pthread_mutex_unlock(&defer_mu);
		while (n > 0)
			MHD_resume_connection(conns[--n]);
		pthread_mutex_lock(&defer_mu);
	} while (h->defers != NULL);
	pthread_mutex_unlock(&defer_mu);
}

void
httpd_stop(struct httpd *h)
{
	struct httpd_stream *s;

	if (h == NULL)
		return;
	atomic_store(&h->stopping, 1);
	MHD_quiesce_daemon(h->mhd);
	defers_finish(h);
	/* Every parked stream must be resumed before MHD_stop_daemon. */
	pthread_mutex_lock(&h->mu);
	for (s = h->streams; s != NULL; s = s->next)
		httpd_stream_wake(s);
	pthread_mutex_unlock(&h->mu);
	MHD_stop_daemon(h->mhd);
	free(h->name);
	if (h->secret != NULL) {
		sodium_memzero(h->secret, strlen(h->secret));
		free(h->secret);
	}
	pthread_mutex_destroy(&h->mu);
	free(h);
}
