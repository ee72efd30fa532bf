/* SPDX-License-Identifier: MIT */
/*
 * errord_clnt.c - the errord API shared by errord and its clients.
 *
 * The decoding half (errord_event_check, errord_batch_parse,
 * errord_tail_query_decode, errord_tail_match) is what errord runs on every
 * request; the encoding half (errord_tail_query_encode) and the calls
 * (errord_clnt_log, errord_clnt_tail) are what errtail and the web UI use.
 * Keeping both in one file keeps the wire format in one place.
 *
 * Decoding is strict: unknown keys, wrong types, bad names or levels,
 * malformed times and oversize events are rejected with "field: reason".
 * Nothing here logs: callers decide how loud a bad request is.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "api_proto.h"
#include "bounds.h"
#include "config.h"
#include "errord_clnt.h"
#include "httpc.h"
#include "log.h"
#include "strbuf.h"
#include "xalloc.h"

#define ERRORD_CLNT_TIMEOUT_MS	10000	/* when cfg.http_timeout_ms is 0 */

struct errord_clnt {
	struct httpc	*http;
};

static const char *const level_names[] = {
	[LOG_LVL_DEBUG] = "debug",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_ERROR] = "error",
	[LOG_LVL_CRIT] = "crit",
};

/* level_parse - strict level name to LOG_LVL_*, -1 if unknown. */
static int
level_parse(const char *s)
{
	size_t	 i;

	for (i = 0; i < NELEM(level_names); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

/* digits - parse exactly n decimal digits at s; -1 if any is not one. */
static int
digits(const char *s, int n)
{
	int	 v = 0, i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* days_from_civil - days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t	 era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* month_days - days in month m of year y. */
static int
month_days(int y, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return days[m - 1];
}

/* errord_time_parse - RFC 3339 date-time to microseconds since the epoch. */
int
errord_time_parse(const char *s, int64_t *usp)
{
	int	 y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0, n;
	int64_t	 frac = 0, scale = 100000, t;
	const char *p;

	if (strlen(s) > ERRORD_TIME_MAX)
		return -1;
	/* YYYY-MM-DDTHH:MM:SS is 19 characters */
	if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' ||
	    s[16] != ':' || (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
		return -1;
	if ((y = digits(s, 4)) < 0 || (mo = digits(s + 5, 2)) < 0 ||
	    (d = digits(s + 8, 2)) < 0 || (h = digits(s + 11, 2)) < 0 ||
	    (mi = digits(s + 14, 2)) < 0 || (sec = digits(s + 17, 2)) < 0)
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 ||
	    mi > 59 || sec > 60)
		return -1;
	p = s + 19;
	if (*p == '.') {
		p++;
		for (n = 0; *p >= '0' && *p <= '9'; p++, n++) {
			frac += (*p - '0') * scale;
			scale /= 10;
		}
		if (n == 0)
			return -1;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		if (strlen(p) != 6 || p[3] != ':' ||
		    (oh = digits(p + 1, 2)) < 0 || (om = digits(p + 4, 2)) < 0 ||
		    oh > 23 || om > 59)
			return -1;
		p += 6;
	} else
		return -1;
	if (*p != '\0')
		return -1;
	t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	t -= (int64_t)sign * (oh * 3600 + om * 60);
	*usp = t * 1000000 + frac;
	return 0;
}

/* errord_time_format - microseconds to "YYYY-MM-DDTHH:MM:SS.uuuuuuZ". */
void
errord_time_format(int64_t us, char *buf, size_t len)
{
	time_t	 t;
	struct tm tm;
	int64_t	 frac;

	t = (time_t)(us / 1000000);
	frac = us % 1000000;
	if (frac < 0) {
		frac += 1000000;
		t--;
	}
	if (gmtime_r(&t, &tm) == NULL) {
		snprintf(buf, len, "1970-01-01T00:00:00.000000Z");
		return;
	}
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06" PRId64 "Z",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, frac);
}

/* errord_since_parse - RFC 3339, or unix seconds with an optional
 * fraction, to microseconds. */
int
errord_since_parse(const char *s, int64_t *usp)
{
	const char *p = s;
	int64_t	 sec = 0, frac = 0, scale = 100000;
	int	 n = 0;

	if (errord_time_parse(s, usp) == 0)
		return 0;
	for (; *p >= '0' && *p <= '9'; p++, n++) {
		if (n >= 12)	/* beyond year 33658: not a time */
			return -1;
		sec = sec * 10 + (*p - '0');
	}
	if (n == 0)
		return -1;
	if (*p == '.') {
		for (p++, n = 0; *p >= '0' && *p <= '9'; p++, n++) {
			frac += (*p - '0') * scale;
			scale /= 10;
		}
		if (n == 0)
			return -1;
	}
	if (*p != '\0')
		return -1;
	*usp = sec * 1000000 + frac;
	return 0;
}

/* check_string - ev[key] must be a string of at most max bytes without NUL
 * (or absent when optional); -1 with the reason in err otherwise. */
static int
check_string(json_t *ev, const char *key, int required, size_t max,
    char *err, size_t errlen)
{
	json_t	*v;
	size_t	 len;

	if ((v = json_object_get(ev, key)) == NULL) {
		if (!required)
			return 0;
		snprintf(err, errlen, "%s: missing", key);
		return -1;
	}
	if (!json_is_string(v)) {
		snprintf(err, errlen, "%s: must be a string", key);
		return -1;
	}
	len = json_string_length(v);
	if (strlen(json_string_value(v)) != len) {
		snprintf(err, errlen, "%s: contains NUL", key);
		return -1;
	}
	if (len > max) {
		snprintf(err, errlen, "%s: longer than %zu bytes", key, max);
		return -1;
	}
	return 0;
}

/* name_ok - non-empty, at most ERRORD_NAME_MAX bytes of [a-z0-9_-]. */
static int
name_ok(const char *s)
{
	size_t	 n;

	for (n = 0; s[n] != '\0'; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') ||
		    (s[n] >= '0' && s[n] <= '9') || s[n] == '_' || s[n] == '-'))
			return 0;
	return n > 0 && n <= ERRORD_NAME_MAX;
}

/* printable_ok - no control characters (a cid goes into log lines). */
static int
printable_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* errord_event_check - validate one incoming event (see errord_clnt.h). */
int
errord_event_check(json_t *ev, char *err, size_t errlen)
{
	static const char *const known[] = { F_EV_TIME, F_EV_DAEMON,
	    F_EV_PID, F_EV_LEVEL, F_EV_MESSAGE, F_EV_CID, F_EV_FIELDS,
	    F_EV_BACKTRACE, F_EV_VERSION, F_EV_HOST };
	const char *key;
	json_t	*v, *fv;
	size_t	 i, size;
	int64_t	 us;

	if (!json_is_object(ev)) {
		snprintf(err, errlen, "event: must be an object");
		return -1;
	}
	json_object_foreach(ev, key, v) {
		for (i = 0; i < NELEM(known); i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (i == NELEM(known)) {
			snprintf(err, errlen, "%.64s: unknown key", key);
			return -1;
		}
	}
	if (check_string(ev, F_EV_TIME, 1, ERRORD_TIME_MAX, err, errlen) < 0 ||
	    check_string(ev, F_EV_DAEMON, 1, ERRORD_NAME_MAX, err,
	    errlen) < 0 ||
	    check_string(ev, F_EV_LEVEL, 1, ERRORD_NAME_MAX, err, errlen) < 0 ||
	    check_string(ev, F_EV_MESSAGE, 1, ERRORD_MAX_EVENT, err,
	    errlen) < 0 ||
	    check_string(ev, F_EV_CID, 0, ERRORD_CID_MAX, err, errlen) < 0 ||
	    check_string(ev, F_EV_BACKTRACE, 0, ERRORD_MAX_EVENT, err,
	    errlen) < 0 ||
	    check_string(ev, F_EV_VERSION, 0, ERRORD_NAME_MAX, err,
	    errlen) < 0 ||
	    check_string(ev, F_EV_HOST, 0, ERRORD_HOST_MAX, err, errlen) < 0)
		return -1;
	if (errord_time_parse(json_string_value(json_object_get(ev,
	    F_EV_TIME)), &us) < 0) {
		snprintf(err, errlen, "%s: not an RFC 3339 time", F_EV_TIME);
		return -1;
	}
	if (!name_ok(json_string_value(json_object_get(ev, F_EV_DAEMON)))) {
		snprintf(err, errlen, "%s: must be 1-%d of [a-z0-9_-]",
		    F_EV_DAEMON, ERRORD_NAME_MAX);
		return -1;
	}
	if (errord_event_level(ev) < 0) {
		snprintf(err, errlen,
		    "%s: must be debug, info, warn, error or crit", F_EV_LEVEL);
		return -1;
	}
	v = json_object_get(ev, F_EV_PID);
	if (v == NULL) {
		snprintf(err, errlen, "%s: missing", F_EV_PID);
		return -1;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > INT32_MAX) {
		snprintf(err, errlen, "%s: must be an integer 0-%d", F_EV_PID,
		    INT32_MAX);
		return -1;
	}
	if ((v = json_object_get(ev, F_EV_CID)) != NULL &&
	    !printable_ok(json_string_value(v))) {
		snprintf(err, errlen, "%s: control character", F_EV_CID);
		return -1;
	}
	if ((v = json_object_get(ev, F_EV_FIELDS)) != NULL) {
		if (!json_is_object(v)) {
			snprintf(err, errlen, "%s: must be an object",
			    F_EV_FIELDS);
			return -1;
		}
		if (json_object_size(v) > ERRORD_MAX_FIELDS) {
			snprintf(err, errlen, "%s: more than %d keys",
			    F_EV_FIELDS, ERRORD_MAX_FIELDS);
			return -1;
		}
		json_object_foreach(v, key, fv) {
			if (key[0] == '\0' || strlen(key) > ERRORD_NAME_MAX ||
			    !printable_ok(key)) {
				snprintf(err, errlen, "%s: bad key \"%.64s\"",
				    F_EV_FIELDS, key);
				return -1;
			}
		}
	}
	size = json_dumpb(ev, NULL, 0, ERRORD_JSON_FLAGS);
	if (size == 0 || size > ERRORD_MAX_EVENT) {
		snprintf(err, errlen, "event: larger than %d bytes",
		    ERRORD_MAX_EVENT);
		return -1;
	}
	return 0;
}

/* errord_event_level - LOG_LVL_* of ev's level, -1 if missing/unknown. */
int
errord_event_level(const json_t *ev)
{
	const char *s;

	if ((s = json_string_value(json_object_get(ev, F_EV_LEVEL))) == NULL)
		return -1;
	return level_parse(s);
}

/* errord_batch_parse - decode a POST /v1/log body into an array of checked
 * events (new reference in *eventsp). */
int
errord_batch_parse(json_t *body, json_t **eventsp, char *err, size_t errlen)
{
	json_t	*events, *ev;
	size_t	 i;
	char	 why[256];

	*eventsp = NULL;
	if (!json_is_object(body)) {
		snprintf(err, errlen, "body: must be an object");
		return -1;
	}
	if ((events = json_object_get(body, F_EV_EVENTS)) == NULL) {
		if (errord_event_check(body, err, errlen) < 0)
			return -1;
		*eventsp = json_array();
		json_array_append(*eventsp, body);
		return 0;
	}
	if (json_object_size(body) != 1) {
		snprintf(err, errlen, "%s: a batch takes no other keys",
		    F_EV_EVENTS);
		return -1;
	}
	if (!json_is_array(events)) {
		snprintf(err, errlen, "%s: must be an array", F_EV_EVENTS);
		return -1;
	}
	if (json_array_size(events) == 0 ||
	    json_array_size(events) > ERRORD_MAX_BATCH) {
		snprintf(err, errlen, "%s: must hold 1-%d events", F_EV_EVENTS,
		    ERRORD_MAX_BATCH);
		return -1;
	}
	json_array_foreach(events, i, ev) {
		if (errord_event_check(ev, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s[%zu].%s", F_EV_EVENTS, i, why);
			return -1;
		}
	}
	*eventsp = json_incref(events);
	return 0;
}

/* errord_tail_query_init - the query with no filter. */
void
errord_tail_query_init(struct errord_tail_query *q)
{
	memset(q, 0, sizeof(*q));
	q->level = LOG_LVL_DEBUG;
	q->limit = ERRORD_TAIL_DEFAULT;
}

/* errord_tail_query_decode - parameters of GET /v1/tail into q. */
int
errord_tail_query_decode(struct errord_tail_query *q, errord_param_fn get,
    void *ctx, char *err, size_t errlen)
{
	const char *v;
	char	*end = NULL;
	long	 n;

	errord_tail_query_init(q);
	/* An empty value means "no filter", as a web form sends it. */
	if ((v = get(ctx, Q_TAIL_DAEMON)) != NULL && *v != '\0') {
		if (!name_ok(v)) {
			snprintf(err, errlen, "%s: must be 1-%d of [a-z0-9_-]",
			    Q_TAIL_DAEMON, ERRORD_NAME_MAX);
			return -1;
		}
		(void)strlcpy_chk(q->daemon, v, sizeof(q->daemon));
	}
	if ((v = get(ctx, Q_TAIL_LEVEL)) != NULL && *v != '\0' &&
	    (q->level = level_parse(v)) < 0) {
		snprintf(err, errlen,
		    "%s: must be debug, info, warn, error or crit",
		    Q_TAIL_LEVEL);
		return -1;
	}
	if ((v = get(ctx, Q_TAIL_SINCE)) != NULL && *v != '\0' &&
	    errord_since_parse(v, &q->since_us) < 0) {
		snprintf(err, errlen,
		    "%s: must be an RFC 3339 time or unix seconds",
		    Q_TAIL_SINCE);
		return -1;
	}
	if ((v = get(ctx, Q_TAIL_TEXT)) != NULL && *v != '\0' &&
	    strlcpy_chk(q->text, v, sizeof(q->text)) < 0) {
		snprintf(err, errlen, "%s: longer than %d bytes", Q_TAIL_TEXT,
		    HTTP_MAX_QUERY_VALUE);
		return -1;
	}
	if ((v = get(ctx, Q_TAIL_LIMIT)) != NULL && *v != '\0') {
		n = -1;
		if (*v >= '0' && *v <= '9' && strlen(v) <= 9)
			n = strtol(v, &end, 10);
		if (n < 0 || n > ERRORD_TAIL_MAX || *end != '\0') {
			snprintf(err, errlen, "%s: must be 0-%d", Q_TAIL_LIMIT,
			    ERRORD_TAIL_MAX);
			return -1;
		}
		q->limit = (int)n;
	}
	if ((v = get(ctx, Q_TAIL_FOLLOW)) != NULL && *v != '\0') {
		if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
			q->follow = 1;
		else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
			q->follow = 0;
		else {
			snprintf(err, errlen, "%s: must be 0 or 1",
			    Q_TAIL_FOLLOW);
			return -1;
		}
	}
	return 0;
}

/* put_param - append "&key=escaped(value)" to sb. */
static void
put_param(struct strbuf *sb, const char *key, const char *value)
{
	char	*e;

	e = httpc_escape(value);
	strbuf_appendf(sb, "&%s=%s", key, e);
	free(e);
}

/* errord_tail_query_encode - q as "/v1/tail?..." (returns allocated). */
char *
errord_tail_query_encode(const struct errord_tail_query *q)
{
	struct strbuf *sb;
	char	 t[ERRORD_TIME_MAX];

	sb = strbuf_new(128);
	strbuf_appendf(sb, "%s?%s=%d", API_ERRORD_TAIL, Q_TAIL_LIMIT, q->limit);
	if (q->daemon[0] != '\0')
		put_param(sb, Q_TAIL_DAEMON, q->daemon);
	if (q->level > LOG_LVL_DEBUG && q->level < (int)NELEM(level_names))
		put_param(sb, Q_TAIL_LEVEL, level_names[q->level]);
	if (q->since_us != 0) {
		errord_time_format(q->since_us, t, sizeof(t));
		put_param(sb, Q_TAIL_SINCE, t);
	}
	if (q->text[0] != '\0')
		put_param(sb, Q_TAIL_TEXT, q->text);
	if (q->follow)
		strbuf_appendf(sb, "&%s=1", Q_TAIL_FOLLOW);
	return strbuf_detach(sb, NULL);
}

/* errord_tail_match - does ev pass q's filters? */
int
errord_tail_match(const struct errord_tail_query *q, const json_t *ev)
{
	const char *s;
	int64_t	 us;

	if (q->daemon[0] != '\0' &&
	    ((s = json_string_value(json_object_get(ev, F_EV_DAEMON))) ==
	    NULL || strcmp(s, q->daemon) != 0))
		return 0;
	if (q->level > LOG_LVL_DEBUG && errord_event_level(ev) < q->level)
		return 0;
	if (q->since_us != 0 &&
	    ((s = json_string_value(json_object_get(ev, F_EV_TIME))) == NULL ||
	    errord_time_parse(s, &us) < 0 || us < q->since_us))
		return 0;
	if (q->text[0] != '\0') {
		s = json_string_value(json_object_get(ev, F_EV_MESSAGE));
		if (s != NULL && strcasestr(s, q->text) != NULL)
			return 1;
		s = json_string_value(json_object_get(ev, F_EV_BACKTRACE));
		return s != NULL && strcasestr(s, q->text) != NULL;
	}
	return 1;
}

/* errord_clnt_new - a client of errord at url (returns allocated). */
struct errord_clnt *
errord_clnt_new(const char *url, const char *secret)
{
	struct errord_clnt *c;
	long	 timeout;

	timeout = cfg.http_timeout_ms > 0 ? cfg.http_timeout_ms :
	    ERRORD_CLNT_TIMEOUT_MS;
	c = xcalloc(1, sizeof(*c));
	c->http = httpc_new(url, secret, timeout);
	return c;
}

/* errord_clnt_free - accepts NULL, returns NULL. */
struct errord_clnt *
errord_clnt_free(struct errord_clnt *c)
{
	if (c == NULL)
		return NULL;
	httpc_free(c->http);
	free(c);
	return NULL;
}

/* error_reason - the "error" of a reply body, or a generic reason. */
static void
error_reason(json_t *resp, long status, char *err, size_t errlen)
{
	const char *s;

	if ((s = json_string_value(json_object_get(resp, F_ERROR))) != NULL)
		snprintf(err, errlen, "errord: %ld %s", status, s);
	else
		snprintf(err, errlen, "errord: HTTP status %ld", status);
}

/* errord_clnt_log - POST one event or an array of events; never retried. */
int
errord_clnt_log(struct errord_clnt *c, json_t *events, char *err,
    size_t errlen)
{
	json_t	*body, *resp = NULL;
	long	 status = 0;
	int	 n = -1;

	if (json_is_array(events))
		body = json_pack("{sO}", F_EV_EVENTS, events);
	else
		body = json_incref(events);
	if (body == NULL) {
		snprintf(err, errlen, "cannot encode the events");
		return -1;
	}
	if (httpc_call(c->http, "POST", API_ERRORD_LOG, body, 0, &status,
	    &resp) < 0) {
		snprintf(err, errlen, "errord unreachable");
	} else if (status != 200 ||
	    !json_is_integer(json_object_get(resp, F_EV_ACCEPTED))) {
		error_reason(resp, status, err, errlen);
	} else
		n = (int)json_integer_value(json_object_get(resp,
		    F_EV_ACCEPTED));
	json_decref(resp);
	json_decref(body);
	return n;
}

struct tail_state {
	errord_tail_fn	 fn;
	void		*ctx;
	char		*err;
	size_t		 errlen;
	int		 failed;
};

/* tail_line - one streamed line: decode it and hand it on. */
static int
tail_line(void *arg, const char *line, size_t len)
{
	struct tail_state *st = arg;
	json_t	*ev;
	int	 stop;

	if (len == 0)
		return 0;
	if ((ev = json_loadb(line, len, 0, NULL)) ==
	    NULL || !json_is_object(ev)) {
		json_decref(ev);
		return 0;	/* not an event: skip it */
	}
	/* An error reply is a lone {"error": ...}: every event has a
	 * message. */
	if (json_object_get(ev, F_ERROR) != NULL &&
	    json_object_get(ev, F_EV_MESSAGE) == NULL) {
		snprintf(st->err, st->errlen, "errord: %s",
		    json_string_value(json_object_get(ev, F_ERROR)) ?
		    json_string_value(json_object_get(ev, F_ERROR)) : "error");
		st->failed = 1;
		json_decref(ev);
		return 1;
	}
	stop = st->fn(st->ctx, ev, line, len);
	json_decref(ev);
	return stop;
}

/* errord_clnt_tail - stream the events of q to fn. */
int
errord_clnt_tail(struct errord_clnt *c, const struct errord_tail_query *q,
    long timeout_ms, errord_tail_fn fn, void *ctx, long *status, char *err,
    size_t errlen)
{
	struct tail_state st;
	char	*path;
	int	 rc;

	memset(&st, 0, sizeof(st));
	st.fn = fn;
	st.ctx = ctx;
	st.err = err;
	st.errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';
	*status = 0;
	path = errord_tail_query_encode(q);
	rc = httpc_stream_lines(c->http, path, timeout_ms, tail_line, &st,
	    status);
	free(path);
	if (st.failed)
		return -1;
	if (rc < 0 || *status != 200) {
		if (err[0] == '\0' && *status == 0)
			snprintf(err, errlen, "errord unreachable");
		else if (err[0] == '\0')
			snprintf(err, errlen, "errord: HTTP status %ld",
			    *status);
		return -1;
	}
	return 0;
}
