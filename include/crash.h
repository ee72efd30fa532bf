/* SPDX-License-Identifier: MIT */
/*
 * crash.h - crash handler and crash-report shipping.
 *
 * On SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT the handler (on its own
 * alternate stack, using only async-signal-safe calls) writes a report to
 * crash_dir: a header (daemon, pid, version, signal, time) and the
 * backtrace symbolised by backtrace_symbols_fd (binaries link with
 * -rdynamic).  It writes <daemon>.<pid>.crash.tmp and renames it, so a
 * report is either complete or absent, then re-raises the signal for the
 * default action (core dump) and the supervisor's restart.
 *
 * Reports reach errord two ways, whichever comes first: errord scans
 * crash_dir every second, and every daemon ships its own leftover reports
 * when it starts again.  A shipper claims a report by renaming it, so each
 * report is logged once; it is deleted only after errord stored it.
 */
#ifndef CRASH_H
#define CRASH_H

#include <jansson.h>

/* crash_init - install the handlers; 0 or -1 (logged). */
int	 crash_init(const char *daemon, const char *version,
	    const char *crash_dir);

/* crash_note - remember a reason (e.g. the panic message) to put in the
 * report if the process crashes next; copies msg into a static buffer. */
void	 crash_note(const char *msg);

/* crash_store_fn - store one crash event (borrowed); 0 when durable. */
typedef int (*crash_store_fn)(json_t *ev, void *ctx);

/* crash_collect - find finished reports in dir (only those of daemon, or
 * all when daemon is NULL), turn each into an errord event (level crit,
 * with backtrace) and hand it to store; delete the report when store
 * returns 0, keep it for the next try otherwise.  Returns the number
 * stored, or -1 if dir cannot be read. */
int	 crash_collect(const char *dir, const char *daemon, crash_store_fn store,
	    void *ctx);

/* crash_parse - a report's text as an event (caller decrefs), or NULL if
 * it is not a well-formed report. */
json_t	*crash_parse(const char *text, size_t len);

/* crash_trigger - crash on purpose with SIGSEGV (test-only endpoint). */
void	 crash_trigger(void) __attribute__((noreturn));

#endif
