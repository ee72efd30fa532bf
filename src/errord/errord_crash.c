/* SPDX-License-Identifier: MIT */
/*
 * errord_crash.c - errord's run loop: crash reports, retention, heartbeats.
 *
 * Every second the loop collects the finished crash reports in crash_dir
 * (crash_collect, crash.h) and stores each as a crit event with its
 * backtrace, durably, before the report is deleted; so a crashed daemon's
 * backtrace is in the log within a second or two even if the daemon never
 * comes back.  A report that does not make a valid event is stored as the
 * closest valid one (unknown keys moved under "fields", backtrace cut)
 * rather than retried forever.  It also applies the retention rules: at
 * start, after each rotation (the writer kicks it) and once an hour, so
 * errord_keep_days applies even without new events.  And every
 * errord_heartbeat seconds it has idle tail -f streams send an empty line,
 * so a follower whose client went away is noticed and freed.
 */
#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api_proto.h"
#include "config.h"
#include "crash.h"
#include "errord.h"
#include "log.h"
#include "metrics.h"

#define CRASH_SCAN_MS		1000
#define RETENTION_EVERY		3600	/* seconds */

static pthread_mutex_t crash_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t crash_cv = PTHREAD_COND_INITIALIZER;
static int crash_stopping;
static int crash_kicked = 1;	/* retention at start */

/* crash_name_ok - a daemon name errord accepts. */
static int
crash_name_ok(const char *s)
{
	size_t	 n;

	for (n = 0; s[n] != '\0'; n++)
		if (strchr("abcdefghijklmnopqrstuvwxyz0123456789_-", s[n]) ==
		    NULL)
			return 0;
	return n > 0 && n <= ERRORD_NAME_MAX;
}

/* crash_sanitize - the nearest valid event to ev (returns new). */
static json_t *
crash_sanitize(json_t *ev)
{
	static const char *const known[] = { F_EV_TIME, F_EV_DAEMON,
	    F_EV_PID, F_EV_LEVEL, F_EV_MESSAGE, F_EV_CID, F_EV_BACKTRACE,
	    F_EV_VERSION, F_EV_HOST };
	json_t	*out, *fields, *v;
	const char *key, *s;
	char	 now[40];
	int64_t	 us;
	size_t	 i;

	out = json_object();
	fields = json_object();
	json_object_foreach(ev, key, v) {
		for (i = 0; i < NELEM(known); i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (i < NELEM(known) && json_is_string(v))
			json_object_set(out, key, v);
		else if (strcmp(key, F_EV_PID) == 0 && json_is_integer(v))
			json_object_set(out, key, v);
		else if (strcmp(key, F_EV_FIELDS) == 0 && json_is_object(v))
			json_object_update(fields, v);
		else if (json_object_size(fields) < ERRORD_MAX_FIELDS &&
		    strlen(key) <= ERRORD_NAME_MAX)
			json_object_set(fields, key, v);
	}
	log_now_rfc3339(now, sizeof(now));
	s = json_string_value(json_object_get(out, F_EV_TIME));
	if (s == NULL || errord_time_parse(s, &us) < 0)
		json_object_set_new(out, F_EV_TIME, json_string(now));
	s = json_string_value(json_object_get(out, F_EV_DAEMON));
	if (s == NULL || !crash_name_ok(s))
		json_object_set_new(out, F_EV_DAEMON, json_string("unknown"));
	v = json_object_get(out, F_EV_PID);
	if (v == NULL || json_integer_value(v) < 0 ||
	    json_integer_value(v) > INT32_MAX)
		json_object_set_new(out, F_EV_PID, json_integer(0));
	json_object_set_new(out, F_EV_LEVEL, json_string("crit"));
	if (json_object_get(out, F_EV_MESSAGE) == NULL)
		json_object_set_new(out, F_EV_MESSAGE,
		    json_string("crash report"));
	s = json_string_value(json_object_get(out, F_EV_BACKTRACE));
	if (s != NULL && strlen(s) > LOG_MAX_BACKTRACE)
		json_object_set_new(out, F_EV_BACKTRACE,
		    json_stringn(s, LOG_MAX_BACKTRACE));
	if (json_object_size(fields) > 0)
		json_object_set(out, F_EV_FIELDS, fields);
	json_decref(fields);
	return out;
}

/* crash_store - crash_store_fn: store one report's event durably. */
static int
crash_store(json_t *ev, void *ctx)
{
	json_t	*arr, *fixed = NULL;
	char	 why[256];
	int	 rc;

	(void)ctx;
	if (errord_event_check(ev, why, sizeof(why)) < 0) {
		fixed = crash_sanitize(ev);
		if (errord_event_check(fixed, why, sizeof(why)) < 0) {
			log_err("errord: crash report dropped: %s", why);
			json_decref(fixed);
			return 0;	/* retrying cannot help */
		}
		ev = fixed;
	}
	arr = json_array();
	json_array_append(arr, ev);
	rc = errord_store_put(arr);
	json_decref(arr);
	json_decref(fixed);
	if (rc == 0)
		metric_add(errord_m.crashes, 1);
	return rc;
}

/* errord_crash_run - the daemon's run function: until errord_crash_stop. */
void
errord_crash_run(void)
{
	struct timespec ts;
	time_t	 last_retention = time(NULL), last_beat = time(NULL);
	int	 warned = 0, kicked, n;

	pthread_mutex_lock(&crash_mu);
	while (!crash_stopping) {
		pthread_mutex_unlock(&crash_mu);
		n = crash_collect(cfg.crash_dir, NULL, crash_store, NULL);
		if (n < 0 && !warned) {
			log_warn("errord: cannot read crash_dir %s",
			    cfg.crash_dir);
			warned = 1;
		} else if (n > 0) {
			log_info("errord: stored %d crash report%s", n,
			    n == 1 ? "" : "s");
			warned = 0;
		} else if (n == 0)
			warned = 0;
		pthread_mutex_lock(&crash_mu);
		kicked = crash_kicked;
		crash_kicked = 0;
		pthread_mutex_unlock(&crash_mu);
		if (kicked || time(NULL) - last_retention >= RETENTION_EVERY) {
			errord_store_retention();
			last_retention = time(NULL);
		}
		if (time(NULL) - last_beat >= cfg.errord_heartbeat) {
			errord_ring_heartbeat();
			last_beat = time(NULL);
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += CRASH_SCAN_MS / 1000;
		pthread_mutex_lock(&crash_mu);
		if (!crash_stopping && !crash_kicked)
			pthread_cond_timedwait(&crash_cv, &crash_mu, &ts);
	}
	pthread_mutex_unlock(&crash_mu);
}

/* errord_crash_kick - a rotation happened: retention now. */
void
errord_crash_kick(void)
{
	pthread_mutex_lock(&crash_mu);
	crash_kicked = 1;
	pthread_cond_signal(&crash_cv);
	pthread_mutex_unlock(&crash_mu);
}

/* errord_crash_stop - make errord_crash_run return. */
void
errord_crash_stop(void)
{
	pthread_mutex_lock(&crash_mu);
	crash_stopping = 1;
	pthread_cond_signal(&crash_cv);
	pthread_mutex_unlock(&crash_mu);
}
