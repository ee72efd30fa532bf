/* SPDX-License-Identifier: MIT */
/*
 * httpd.h - the HTTP server every daemon serves its API with (a wrapper
 * around libmicrohttpd in epoll mode).
 *
 * A daemon hands over one route table (method + path -> handler); anything
 * else is 404, a known path with another method 405.  Bodies are collected up
 * to the route's bound (413 beyond it).  Routes are authenticated with the
 * shared secret ("Authorization: Bearer ...", compared in constant time; 401
 * otherwise) unless marked HTTPD_PUBLIC.  HTTPD_JSON routes get their body
 * decoded strictly with jansson before the handler runs: wrong content type
 * 415, malformed JSON, duplicate keys or trailing garbage 400.  Every error
 * is a JSON body {"error": "..."}.  GET /healthz and GET /metrics are added
 * to every table.
 *
 * Handlers run on the server's threads (http_threads) and must reply exactly
 * once with one of the httpd_reply* calls.
 */
#ifndef HTTPD_H
#define HTTPD_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "strbuf.h"
#include "xalloc.h"

struct httpd;
struct httpd_req;
struct httpd_stream;

/* httpd_handler - returns 0; -1 means "reply 500 for me" if it has not
 * replied yet. */
typedef int (*httpd_handler)(struct httpd_req *);

#define HTTPD_PUBLIC	0x01	/* no shared secret needed */
#define HTTPD_JSON	0x02	/* body must be a JSON object */
#define HTTPD_PREFIX	0x04	/* path matches as a prefix */

struct httpd_route {
	const char	*method;	/* "GET", "POST", ... */
	const char	*path;
	httpd_handler	 fn;
	int		 flags;
	size_t		 max_body;	/* 0: the server default */
};
#define HTTPD_ROUTE_END	{ NULL, NULL, NULL, 0, 0 }

/* httpd_health_fn - extra readiness check for /healthz: 0 healthy; on -1
 * the reason (borrowed static string) is reported with a 503. */
typedef int (*httpd_health_fn)(const char **reason);

struct httpd_config {
	const char		*name;		/* daemon name, for metrics */
	const char		*host;
	int			 port;		/* 0: pick a free port */
	const struct httpd_route *routes;	/* ends with HTTPD_ROUTE_END */
	const char		*secret;	/* NULL: no route needs one */
	int			 threads;	/* 1: one epoll thread */
	size_t			 max_body;	/* default per route */
	httpd_health_fn		 health;	/* may be NULL */
};

/* httpd_start - bind and serve; NULL on failure (logged). */
struct httpd *httpd_start(const struct httpd_config *);
/* httpd_port - the bound port (useful with port 0). */
int	 httpd_port(const struct httpd *);
/* httpd_stop - end open streams, stop serving, free; accepts NULL. */
void	 httpd_stop(struct httpd *);

/* Request accessors; returned strings are borrowed, valid until the
 * handler returns. */
const char *httpd_req_method(const struct httpd_req *);
const char *httpd_req_path(const struct httpd_req *);
const char *httpd_req_query(const struct httpd_req *, const char *key);
const char *httpd_req_header(const struct httpd_req *, const char *name);
const char *httpd_req_body(const struct httpd_req *, size_t *lenp);
/* httpd_req_json - the decoded body of an HTTPD_JSON route (borrowed). */
json_t	*httpd_req_json(const struct httpd_req *);
const char *httpd_req_peer(const struct httpd_req *);
/* httpd_req_cid - the X-Correlation-Id header, or a fresh id (borrowed). */
const char *httpd_req_cid(struct httpd_req *);

/* Replies.  Each returns 0, or -1 if the reply could not be queued. */
int	 httpd_reply(struct httpd_req *, unsigned status, const char *ctype,
	    const void *body, size_t len);
/* httpd_reply_with - httpd_reply plus extra response headers given as
 * name, value pairs ending with NULL (e.g. nginx auth_http's Auth-*). */
int	 httpd_reply_with(struct httpd_req *, unsigned status,
	    const char *const *headers, const char *ctype, const void *body,
	    size_t len);
/* httpd_reply_json - takes ownership of j. */
int	 httpd_reply_json(struct httpd_req *, unsigned status, json_t *j);
/* httpd_reply_error - {"error": "<formatted reason>"}; logged at debug. */
int	 httpd_reply_error(struct httpd_req *, unsigned status,
	    const char *fmt, ...) ATTR_PRINTF(3, 4);
/* httpd_json_unpack - strict json_unpack_ex of the body (extra keys are
 * an error when the format ends with '!'); on failure replies 400 with
 * the reason and returns -1. */
int	 httpd_json_unpack(struct httpd_req *, const char *fmt, ...);

/*
 * Deferred replies: a handler whose answer waits on another thread (say,
 * messageserver's group commit) parks its connection with httpd_defer and
 * returns 0; no server thread is held meanwhile.  Exactly one
 * httpd_defer_reply_json(d, status, j) answers it later, from any thread
 * (j is taken, as by httpd_reply_json).  A client that went away meanwhile
 * costs nothing: the answer is dropped.  httpd_stop waits up to 30 s for
 * the answers, then answers the rest 503 and drops their late answers.
 * httpd_defer returns NULL (logged) if the request has a reply already.
 */
struct httpd_defer;
struct httpd_defer *httpd_defer(struct httpd_req *);
void	 httpd_defer_reply_json(struct httpd_defer *, unsigned status,
	    json_t *j);

/*
 * Streaming replies (chunked), e.g. errord's tail -f.  fn fills buf with up
 * to max bytes and returns the count; 0 means "nothing yet": the connection
 * is parked (no thread is held) until httpd_stream_wake; -1 ends the stream.
 * free_fn(ctx) runs once when the stream ends for any reason.
 * httpd_stream_wake may be called from any thread, any number of times,
 * but never while holding a lock that fn takes: fn runs under the stream's
 * own lock, which wake takes too.  After free_fn returns, nothing may wake
 * the stream again (free_fn unregisters it from the producer).
 */
typedef ssize_t (*httpd_stream_fn)(void *ctx, char *buf, size_t max);
struct httpd_stream *httpd_reply_stream(struct httpd_req *, unsigned status,
	    const char *ctype, httpd_stream_fn fn, void *ctx,
	    void (*free_fn)(void *));
void	 httpd_stream_wake(struct httpd_stream *);

#endif
