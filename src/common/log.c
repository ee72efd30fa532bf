/* SPDX-License-Identifier: MIT */
/*
 * log.c - structured logging with the chain stderr -> errord -> fallback.
 *
 * log_event builds one JSON event and hands it to exactly one place: stderr
 * in foreground mode, the sink (errord's own store), or a bounded queue that
 * the shipper thread posts to errord in batches.  The caller never waits on
 * the network: a full queue drops the event and counts it.  When errord
 * cannot take a batch, the shipper writes it to stderr (the supervisor's or
 * journald's log) so nothing is silently lost, and retries a second later.
 * The shipper never logs through this module, so logging cannot recurse.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_proto.h"
#include "bounds.h"
#include "crash.h"
#include "httpc.h"
#include "log.h"
#include "metrics.h"
#include "strbuf.h"

/*
 * How long the shipper lets a batch gather after its first event.  One
 * POST per event cost errord (and each daemon's shipper) more than the
 * events themselves: at a few hundred messages/s, smtpd's line per message
 * was about 10 % of the machine under ingest.  A tenth of a second is
 * nothing to an operator tailing errord, and a full batch (LOG_BATCH_MAX)
 * goes at once; at shutdown nothing lingers.
 */
#define LOG_LINGER_MS	100

static const char *const level_names[] = {
	"debug", "info", "warn", "error", "crit",
};

static struct {
	char		 daemon[64];
	char		 version[64];
	char		 host[128];
	int		 to_stderr;
	int		 level;
	log_sink_fn	 sink;

	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	json_t		**q;		/* ring of queued events */
	unsigned	 qcap, qhead, qlen;
	int		 running, stopping;
	struct timespec	 deadline;	/* flush deadline once stopping */
	pthread_t	 thr;
	struct httpc	*clnt;
} L = {
	.daemon = "groups",
	.level = LOG_LVL_INFO,
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.cv = PTHREAD_COND_INITIALIZER,
};

static atomic_uint_fast64_t log_drops;
static atomic_uint_fast64_t log_shipped;
static atomic_uint_fast64_t log_fallbacks;

static int64_t dropped_metric(void) { return (int64_t)log_drops; }
static int64_t shipped_metric(void) { return (int64_t)log_shipped; }
static int64_t fallback_metric(void) { return (int64_t)log_fallbacks; }

void
log_init(const char *daemon, int to_stderr)
{
	strlcpy_chk(L.daemon, daemon, sizeof(L.daemon));
	L.to_stderr = to_stderr;
	if (gethostname(L.host, sizeof(L.host) - 1) == -1)
		L.host[0] = '\0';
	metric_gauge_fn("log_dropped_total",
	    "log events dropped because the queue was full", dropped_metric);
	metric_gauge_fn("log_shipped_total", "log events stored by errord",
	    shipped_metric);
	metric_gauge_fn("log_fallback_total",
	    "log events written to stderr because errord was unreachable",
	    fallback_metric);
}

void
log_set_level(int level)
{
	L.level = level;
}

void
log_set_version(const char *v)
{
	strlcpy_chk(L.version, v, sizeof(L.version));
}

void
log_set_sink(log_sink_fn fn)
{
	L.sink = fn;
}

int
log_level_parse(const char *s)
{
	size_t i;

	for (i = 0; i < NELEM(level_names); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *
log_level_name(int level)
{
	if (level < 0 || (size_t)level >= NELEM(level_names))
		return "unknown";
	return level_names[level];
}

uint64_t
log_dropped(void)
{
	return log_drops;
}

void
log_now_rfc3339(char *buf, unsigned len)
{
	struct timespec ts;
	struct tm tm;
	char base[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%06ldZ", base, ts.tv_nsec / 1000);
}

/* log_utf8_fix - replace every byte that is not part of a well-formed UTF-8
 * sequence with '?', in place. */
void
log_utf8_fix(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p != '\0') {
		int n, i;
		unsigned cp;

		if (*p < 0x80) {
			p++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0) {
			n = 1;
			cp = *p & 0x1f;
		} else if ((*p & 0xf0) == 0xe0) {
			n = 2;
			cp = *p & 0x0f;
		} else if ((*p & 0xf8) == 0xf0) {
			n = 3;
			cp = *p & 0x07;
		} else {
			*p++ = '?';
			continue;
		}
		for (i = 1; i <= n; i++)
			if ((p[i] & 0xc0) != 0x80)
				break;
		if (i <= n) {
			*p++ = '?';
			continue;
		}
		for (i = 1; i <= n; i++)
			cp = (cp << 6) | (p[i] & 0x3f);
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff)) {
			*p++ = '?';
			continue;
		}
		p += n + 1;
	}
}

json_t *
log_make_event(int level, const char *cid, json_t *fields,
    const char *message)
{
	char now[40];
	json_t *ev;

	log_now_rfc3339(now, sizeof(now));
	ev = json_object();
	json_object_set_new(ev, F_EV_TIME, json_string(now));
	json_object_set_new(ev, F_EV_DAEMON, json_string(L.daemon));
	json_object_set_new(ev, F_EV_PID, json_integer(getpid()));
	json_object_set_new(ev, F_EV_LEVEL, json_string(log_level_name(level)));
	/* json_string rejects invalid UTF-8, and a batch holding such a
	 * string could not be encoded at all: keep the text, lossy. */
	if (json_object_set_new(ev, F_EV_MESSAGE, json_string(message)) == -1) {
		char *fixed = xstrdup(message);

		log_utf8_fix(fixed);
		json_object_set_new(ev, F_EV_MESSAGE, json_string(fixed));
		free(fixed);
	}
	if (cid != NULL && *cid != '\0')
		json_object_set_new(ev, F_EV_CID, json_string(cid));
	if (fields != NULL)
		json_object_set_new(ev, F_EV_FIELDS, fields);
	if (L.version[0] != '\0')
		json_object_set_new(ev, F_EV_VERSION, json_string(L.version));
	if (L.host[0] != '\0')
		json_object_set_new(ev, F_EV_HOST, json_string(L.host));
	return ev;
}

/* log_write_stderr - one readable line; fallback marks errord trouble. */
static void
log_write_stderr(json_t *ev, int fallback)
{
	struct strbuf *sb = strbuf_new(256);
	json_t *f = json_object_get(ev, F_EV_FIELDS);
	const char *k, *cid = json_string_value(json_object_get(ev, F_EV_CID));
	const char *bt;
	json_t *v;

	strbuf_appendf(sb, "%s %s[%lld] %s: %s",
	    json_string_value(json_object_get(ev, F_EV_TIME)),
	    json_string_value(json_object_get(ev, F_EV_DAEMON)),
	    (long long)json_integer_value(json_object_get(ev, F_EV_PID)),
	    json_string_value(json_object_get(ev, F_EV_LEVEL)),
	    json_string_value(json_object_get(ev, F_EV_MESSAGE)));
	if (cid != NULL)
		strbuf_appendf(sb, " cid=%s", cid);
	json_object_foreach(f, k, v) {
		char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

		if (json_is_string(v))
			strbuf_appendf(sb, " %s=%s", k, json_string_value(v));
		else if (s != NULL)
			strbuf_appendf(sb, " %s=%s", k, s);
		free(s);
	}
	if (fallback)
		strbuf_puts(sb, " (errord unavailable)");
	strbuf_putc(sb, '\n');
	if ((bt = json_string_value(json_object_get(ev, F_EV_BACKTRACE))))
		strbuf_appendf(sb, "%s\n", bt);
	/* One write, so concurrent lines do not interleave. */
	if (write(STDERR_FILENO, sb->buf, sb->len) < 0) {
		/* nowhere left to report it */
	}
	strbuf_free(sb);
}

/* log_dispatch - takes ownership of ev. */
static void
log_dispatch(json_t *ev)
{
	if (L.to_stderr) {
		log_write_stderr(ev, 0);
	} else if (L.sink != NULL) {
		L.sink(ev);
	} else {
		pthread_mutex_lock(&L.mu);
		if (L.running && !L.stopping) {
			if (L.qlen == L.qcap) {
				atomic_fetch_add(&log_drops, 1);
			} else {
				L.q[(L.qhead + L.qlen++) % L.qcap] = ev;
				ev = NULL;
				/* the shipper needs a word only to start a
				 * batch or to cut a full one short */
				if (L.qlen == 1 || L.qlen == LOG_BATCH_MAX)
					pthread_cond_signal(&L.cv);
			}
			pthread_mutex_unlock(&L.mu);
		} else {
			pthread_mutex_unlock(&L.mu);
			log_write_stderr(ev, 0);
		}
	}
	json_decref(ev);
}

static void
log_vevent(int level, const char *cid, json_t *fields, const char *suffix,
    const char *fmt, va_list ap)
{
	char msg[LOG_MAX_MESSAGE];
	int n;

	if (level < L.level) {
		json_decref(fields);
		return;
	}
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		strlcpy_chk(msg, fmt, sizeof(msg));
	else if ((size_t)n >= sizeof(msg))
		memcpy(msg + sizeof(msg) - 4, "...", 4);
	if (suffix != NULL) {
		size_t len = strlen(msg);

		snprintf(msg + len, sizeof(msg) - len, ": %s", suffix);
	}
	log_dispatch(log_make_event(level, cid, fields, msg));
}

void
log_event(int level, const char *cid, json_t *fields, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vevent(level, cid, fields, NULL, fmt, ap);
	va_end(ap);
}

#define LOG_FN(name, lvl)						\
void									\
name(const char *fmt, ...)						\
{									\
	va_list ap;							\
									\
	va_start(ap, fmt);						\
	log_vevent(lvl, NULL, NULL, NULL, fmt, ap);			\
	va_end(ap);							\
}
LOG_FN(log_debug, LOG_LVL_DEBUG)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_warnx, LOG_LVL_WARN)
LOG_FN(log_err, LOG_LVL_ERROR)

void
log_warn(const char *fmt, ...)
{
	char eb[128];
	const char *es;
	int saved = errno;
	va_list ap;

	es = strerror_r(saved, eb, sizeof(eb));
	va_start(ap, fmt);
	log_vevent(LOG_LVL_WARN, NULL, NULL, es, fmt, ap);
	va_end(ap);
	errno = saved;
}

/* log_fatal_common - log at crit to errord and to stderr, then exit. */
static void
log_fatal_common(const char *suffix, const char *fmt, va_list ap)
{
	char msg[LOG_MAX_MESSAGE];
	json_t *ev;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (suffix != NULL) {
		size_t len = strlen(msg);

		snprintf(msg + len, sizeof(msg) - len, ": %s", suffix);
	}
	ev = log_make_event(LOG_LVL_CRIT, NULL, NULL, msg);
	if (!L.to_stderr)
		log_write_stderr(ev, 0);
	log_dispatch(ev);
	log_shutdown(2000);
	exit(1);
}

void
fatal(const char *fmt, ...)
{
	char eb[128];
	const char *es = strerror_r(errno, eb, sizeof(eb));
	va_list ap;

	va_start(ap, fmt);
	log_fatal_common(es, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_fatal_common(NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

/* panic - no allocation: this may be reporting out-of-memory. */
void
panic(const char *fmt, ...)
{
	char msg[1024], line[1200];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	crash_note(msg);
	n = snprintf(line, sizeof(line), "%s[%ld] panic: %s\n", L.daemon,
	    (long)getpid(), msg);
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
	abort();
}

/* log_ship - post events[0..n) to errord; 0 if errord stored them. */
static int
log_ship(json_t **evs, unsigned n)
{
	json_t *batch = json_object(), *arr = json_array();
	long status = 0;
	unsigned i;
	int rc;

	for (i = 0; i < n; i++)
		json_array_append(arr, evs[i]);
	json_object_set_new(batch, F_EV_EVENTS, arr);
	rc = httpc_call(L.clnt, "POST", API_ERRORD_LOG, batch, HTTPC_NOLOG,
	    &status, NULL);
	json_decref(batch);
	return (rc == 0 && status == 200) ? 0 : -1;
}

static int
past(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return now.tv_sec > t->tv_sec ||
	    (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* log_pause - sleep ms unless shutting down; 0 slept, -1 stopping. */
static int
log_pause(long ms)
{
	struct timespec ts;
	int stop;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&L.mu);
	/* new events signal cv too: sleep the whole pause */
	while (!L.stopping && !past(&ts))
		pthread_cond_timedwait(&L.cv, &L.mu, &ts);
	stop = L.stopping && past(&L.deadline);
	pthread_mutex_unlock(&L.mu);
	return stop ? -1 : 0;
}

/* log_ship_retrying - errord may be starting or restarting: try for about
 * three seconds before giving the batch to the fallback. */
static int
log_ship_retrying(json_t **evs, unsigned n)
{
	long wait = 200;
	int attempt;

	for (attempt = 0; attempt < 5; attempt++) {
		if (log_ship(evs, n) == 0)
			return 0;
		if (attempt == 4 || log_pause(wait) == -1)
			break;
		wait *= 2;
	}
	return -1;
}

static void *
log_shipper(void *arg)
{
	json_t *batch[LOG_BATCH_MAX];
	unsigned n, i;

	(void)arg;
	pthread_mutex_lock(&L.mu);
	for (;;) {
		struct timespec until;

		while (L.qlen == 0 && !L.stopping)
			pthread_cond_wait(&L.cv, &L.mu);
		if (L.qlen == 0)
			break;
		/* let the batch gather (LOG_LINGER_MS) */
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += LOG_LINGER_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (L.qlen < LOG_BATCH_MAX && !L.stopping && !past(&until))
			pthread_cond_timedwait(&L.cv, &L.mu, &until);
		for (n = 0; n < LOG_BATCH_MAX && L.qlen > 0; n++) {
			batch[n] = L.q[L.qhead];
			L.qhead = (L.qhead + 1) % L.qcap;
			L.qlen--;
		}
		pthread_mutex_unlock(&L.mu);
		if (log_ship_retrying(batch, n) == 0) {
			atomic_fetch_add(&log_shipped, n);
		} else {
			/* errord stayed down: keep the lines on stderr. */
			atomic_fetch_add(&log_fallbacks, n);
			for (i = 0; i < n; i++)
				log_write_stderr(batch[i], 1);
		}
		for (i = 0; i < n; i++)
			json_decref(batch[i]);
		pthread_mutex_lock(&L.mu);
		if (L.stopping && past(&L.deadline))
			break;
	}
	/* Out of time: what is left goes to stderr. */
	while (L.qlen > 0) {
		json_t *ev = L.q[L.qhead];

		L.qhead = (L.qhead + 1) % L.qcap;
		L.qlen--;
		log_write_stderr(ev, 1);
		json_decref(ev);
	}
	pthread_mutex_unlock(&L.mu);
	return NULL;
}

int
log_start_shipper(const char *url, const char *secret, unsigned queue_max)
{
	int rc;

	pthread_mutex_lock(&L.mu);
	if (L.running) {
		pthread_mutex_unlock(&L.mu);
		return 0;
	}
	L.qcap = queue_max ? queue_max : LOG_QUEUE_DEFAULT;
	L.qhead = L.qlen = 0;
	L.q = xcalloc(L.qcap, sizeof(*L.q));
	L.clnt = httpc_new(url, secret, 3000);
	L.stopping = 0;
	if ((rc = pthread_create(&L.thr, NULL, log_shipper, NULL)) != 0) {
		pthread_mutex_unlock(&L.mu);
		errno = rc;
		log_warn("log: cannot start shipper thread");
		return -1;
	}
	L.running = 1;
	pthread_mutex_unlock(&L.mu);
	return 0;
}

void
log_shutdown(int ms)
{
	pthread_mutex_lock(&L.mu);
	if (!L.running || L.stopping) {
		pthread_mutex_unlock(&L.mu);
		return;
	}
	L.stopping = 1;
	clock_gettime(CLOCK_REALTIME, &L.deadline);
	L.deadline.tv_sec += ms / 1000;
	L.deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (L.deadline.tv_nsec >= 1000000000L) {
		L.deadline.tv_sec++;
		L.deadline.tv_nsec -= 1000000000L;
	}
	pthread_cond_broadcast(&L.cv);
	pthread_mutex_unlock(&L.mu);
	pthread_join(L.thr, NULL);
	pthread_mutex_lock(&L.mu);
	L.running = 0;
	free(L.q);
	L.q = NULL;
	L.clnt = httpc_free(L.clnt);
	pthread_mutex_unlock(&L.mu);
}
