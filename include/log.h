/* SPDX-License-Identifier: MIT */
/*
 * log.h - the one logging API of every daemon and command.
 *
 * Where a line goes is a chain: stderr in foreground mode (-d); otherwise a
 * bounded in-memory queue that a background thread ships to errord in
 * batches, with stderr (journald/the supervisor's log file) as the fallback
 * when errord is unreachable.  Logging never blocks the caller: when the
 * queue is full the event is dropped and counted (log_dropped, and the
 * log_dropped_total metric).  Each event is one structured record:
 * time, daemon, pid, level, message, optional correlation id and fields.
 *
 * Four ways to fail (Postfix msg(3)): log_warn/log_warnx recoverable,
 * fatal/fatalx bad environment at start-up (exit 1), panic "cannot happen"
 * (abort: the crash handler sends the backtrace to errord).
 */
#ifndef LOG_H
#define LOG_H

#include <stdint.h>

#include <jansson.h>

#include "xalloc.h"

enum log_level {
	LOG_LVL_DEBUG,
	LOG_LVL_INFO,
	LOG_LVL_WARN,
	LOG_LVL_ERROR,
	LOG_LVL_CRIT,
};

/* log_sink_fn - receives every event instead of the shipper (errord uses
 * this to store its own events); ev is borrowed. */
typedef void (*log_sink_fn)(json_t *ev);

/* log_init - set the daemon name; to_stderr: foreground mode. */
void	 log_init(const char *daemon, int to_stderr);
void	 log_set_level(int);
int	 log_level_parse(const char *);	/* -1 if unknown */
const char *log_level_name(int);
void	 log_set_version(const char *);
/* log_start_shipper - ship queued events to errord at url (no trailing
 * slash) with the shared secret; queue_max bounds memory. 0 or -1. */
int	 log_start_shipper(const char *url, const char *secret,
	    unsigned queue_max);
void	 log_set_sink(log_sink_fn);
/* log_shutdown - flush the queue for at most ms milliseconds, stop the
 * shipper thread. */
void	 log_shutdown(int ms);
uint64_t log_dropped(void);

/* log_event - the primitive: fields (may be NULL) is stolen; cid may be
 * NULL. */
void	 log_event(int level, const char *cid, json_t *fields,
	    const char *fmt, ...) ATTR_PRINTF(4, 5);
/* log_make_event - returns a new event object (caller decrefs), as shipped
 * to errord; used by log_event and by the crash reporter. */
json_t	*log_make_event(int level, const char *cid, json_t *fields,
	    const char *message);

void	 log_debug(const char *, ...) ATTR_PRINTF(1, 2);
void	 log_info(const char *, ...) ATTR_PRINTF(1, 2);
/* log_warn - appends ": strerror(errno)". */
void	 log_warn(const char *, ...) ATTR_PRINTF(1, 2);
void	 log_warnx(const char *, ...) ATTR_PRINTF(1, 2);
/* log_err - an error the operator should see; still recoverable. */
void	 log_err(const char *, ...) ATTR_PRINTF(1, 2);
void	 fatal(const char *, ...) ATTR_PRINTF(1, 2) ATTR_NORETURN;
void	 fatalx(const char *, ...) ATTR_PRINTF(1, 2) ATTR_NORETURN;
void	 panic(const char *, ...) ATTR_PRINTF(1, 2) ATTR_NORETURN;

/* log_utf8_fix - replace bytes that are not well-formed UTF-8 with '?', in
 * place (JSON strings must be valid UTF-8). */
void	 log_utf8_fix(char *);

/* log_now_rfc3339 - current UTC time as 2026-12-03T14:00:00.123456Z. */
void	 log_now_rfc3339(char *buf, unsigned len);

#endif
