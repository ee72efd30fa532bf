/* SPDX-License-Identifier: MIT */
/*
 * httpc.h - the HTTP JSON client every *_clnt module is built on (libcurl).
 *
 * One client per peer daemon (base URL + shared secret); safe to share
 * between threads, connections are reused through a shared cache.  Every
 * call has a total timeout.  Only calls marked HTTPC_IDEMPOTENT are retried
 * (up to 2 more times, with a short backoff) after a transport error or a
 * 502/503/504: a POST that may have been applied is never sent twice.
 */
#ifndef HTTPC_H
#define HTTPC_H

#include <jansson.h>

#include "strbuf.h"

struct httpc;

#define HTTPC_IDEMPOTENT	0x01
#define HTTPC_NOLOG		0x02	/* do not log failures (log shipper) */

/* httpc_new - returns allocated; base_url without trailing slash; secret may
 * be NULL. */
struct httpc *httpc_new(const char *base_url, const char *secret,
	    long timeout_ms);
/* httpc_free - accepts NULL, returns NULL. */
struct httpc *httpc_free(struct httpc *);

/*
 * httpc_call - method path with body (borrowed, may be NULL) as JSON.
 * Returns 0 when a response arrived (any status, in *status) and stores the
 * decoded JSON body in *resp (caller decrefs; NULL if not JSON or resp
 * NULL); -1 on a transport error or timeout (logged unless HTTPC_NOLOG).
 */
int	 httpc_call(struct httpc *, const char *method, const char *path,
	    const json_t *body, int flags, long *status, json_t **resp);
/* httpc_get_raw - GET into out (bounded by max bytes); 0 or -1. */
int	 httpc_get_raw(struct httpc *, const char *path, int flags,
	    long *status, struct strbuf *out, size_t max);

/* httpc_line_fn - one line of a streamed body (without the newline);
 * return non-zero to stop. */
typedef int (*httpc_line_fn)(void *ctx, const char *line, size_t len);
/* httpc_stream_lines - GET path and call fn per line until the server
 * ends the stream, fn stops it, or (timeout_ms > 0) time runs out.
 * Returns 0 when a response arrived, whatever its status: the caller checks
 * *status (the lines of an error reply are passed to fn too); -1 on a
 * transport error, with *status holding the HTTP status if known. */
int	 httpc_stream_lines(struct httpc *, const char *path, long timeout_ms,
	    httpc_line_fn fn, void *ctx, long *status);

/* httpc_escape - URL-encode s for a query string (allocated). */
char	*httpc_escape(const char *s);

#endif
