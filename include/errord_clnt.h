/* SPDX-License-Identifier: MIT */
/*
 * errord_clnt.h - the errord API: event validation, batch decoding, tail
 * query encoding and decoding, and the client calls.
 *
 * errord and its clients share this one encode/decode pair: errord checks
 * every incoming event with errord_event_check and decodes POST /v1/log
 * bodies with errord_batch_parse; errtail and the web UI build their
 * GET /v1/tail requests with errord_tail_query_encode, which errord decodes
 * with errord_tail_query_decode and applies with errord_tail_match.
 *
 * An event is a JSON object with the fields named in api_proto.h (F_EV_*);
 * its limits are in bounds.h (ERRORD_*).
 */
#ifndef ERRORD_CLNT_H
#define ERRORD_CLNT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "bounds.h"

#define ERRORD_CID_MAX		128	/* bytes of a correlation id */
#define ERRORD_HOST_MAX		255	/* bytes of a host name */
#define ERRORD_TIME_MAX		64	/* bytes of an RFC 3339 time */
#define ERRORD_TAIL_DEFAULT	100	/* events a tail returns by default */

/* Flags of json_dumps for a stored or sent event: one line, sender order. */
#define ERRORD_JSON_FLAGS	(JSON_COMPACT | JSON_PRESERVE_ORDER)

/* errord_time_parse - RFC 3339 ("2026-12-03T14:00:00.123Z", any offset) to
 * microseconds since the epoch (UTC).  0 or -1. */
int	 errord_time_parse(const char *s, int64_t *usp);
/* errord_time_format - us as "2026-12-03T14:00:00.123456Z" into buf. */
void	 errord_time_format(int64_t us, char *buf, size_t len);
/* errord_since_parse - RFC 3339 or unix seconds (with optional fraction)
 * to microseconds.  0 or -1. */
int	 errord_since_parse(const char *s, int64_t *usp);

/* errord_event_check - 0 if ev is a valid event to store; otherwise -1
 * with "field: reason" in err.  Checks types, required and unknown keys,
 * the daemon name's alphabet, the level and the encoded size. */
int	 errord_event_check(json_t *ev, char *err, size_t errlen);
/* errord_event_level - the level of a checked event (LOG_LVL_*), -1 if
 * missing or unknown. */
int	 errord_event_level(const json_t *ev);

/* errord_batch_parse - decode a POST /v1/log body: one event or
 * {"events": [ ... ]} with 1..ERRORD_MAX_BATCH events.  On success returns
 * 0 and a new reference to an array of the events in *eventsp (caller
 * decrefs); on failure -1 with "events[i].field: reason" in err and
 * nothing returned. */
int	 errord_batch_parse(json_t *body, json_t **eventsp, char *err,
	    size_t errlen);

/* A tail query (GET /v1/tail).  Strings are owned copies. */
struct errord_tail_query {
	char	 daemon[ERRORD_NAME_MAX + 1];	/* "": every daemon */
	int	 level;		/* minimum level, LOG_LVL_DEBUG: all */
	int64_t	 since_us;	/* 0: no lower bound on the event time */
	char	 text[HTTP_MAX_QUERY_VALUE + 1];	/* "": any message */
	int	 limit;		/* history: the last limit matching events */
	int	 follow;	/* then stream new events */
};

/* errord_param_fn - the value of query parameter key, or NULL (borrowed). */
typedef const char *(*errord_param_fn)(void *ctx, const char *key);

/* errord_tail_query_init - no filter, default limit, no follow. */
void	 errord_tail_query_init(struct errord_tail_query *);
/* errord_tail_query_decode - fill q from the parameters get returns; 0, or
 * -1 with "param: reason" in err. */
int	 errord_tail_query_decode(struct errord_tail_query *q,
	    errord_param_fn get, void *ctx, char *err, size_t errlen);
/* errord_tail_query_encode - the request path with its query string
 * (returns allocated, caller frees). */
char	*errord_tail_query_encode(const struct errord_tail_query *q);
/* errord_tail_match - non-zero if the event (borrowed) passes q's filters
 * (daemon, level, since, text). */
int	 errord_tail_match(const struct errord_tail_query *q, const json_t *ev);

/* The client. */
struct errord_clnt;

/* errord_clnt_new - returns allocated; url without trailing slash; secret is
 * the derived API secret (copied). */
struct errord_clnt *errord_clnt_new(const char *url, const char *secret);
/* errord_clnt_free - accepts NULL, returns NULL. */
struct errord_clnt *errord_clnt_free(struct errord_clnt *);

/* errord_clnt_log - POST events (borrowed: one event object or an array)
 * to errord; never retried (not idempotent).  Returns the number accepted,
 * or -1 (reason in err: transport error or errord's error reply). */
int	 errord_clnt_log(struct errord_clnt *, json_t *events, char *err,
	    size_t errlen);

/* errord_tail_fn - one event (borrowed) with its raw line; return non-zero
 * to stop. */
typedef int (*errord_tail_fn)(void *ctx, json_t *ev, const char *line,
	    size_t len);

/* errord_clnt_tail - run query q and call fn per event, oldest first; with
 * q->follow, until fn stops, the stream ends or (timeout_ms > 0) time runs
 * out.  Returns 0; -1 with *status the HTTP status (0: unreachable) and a
 * reason in err. */
int	 errord_clnt_tail(struct errord_clnt *, const struct errord_tail_query *q,
	    long timeout_ms, errord_tail_fn fn, void *ctx, long *status,
	    char *err, size_t errlen);

#endif
