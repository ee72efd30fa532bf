/* SPDX-License-Identifier: MIT */
/*
 * bouncer_progress.c - the bouncer's progress line on a terminal.
 *
 * Run by hand, each phase shows one line on stderr, redrawn as it goes
 * ("bouncer: probe    [####....] 2/5 accounts, 2 probes sent") and ended
 * when the phase ends.  Under cron stderr is no terminal and nothing is
 * written, so the log keeps only the summary.  Redraws are capped at ten
 * a second so a phase over many rows does not spend its time on the
 * terminal.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bouncer.h"

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* bouncer_progress_show - redraw the phase's line, at most ten times a
 * second unless final. */
void
bouncer_progress_show(struct bouncer_progress *p, int final)
{
	/* one terminal line at a time: the cap spans the phases */
	static double last;
	char bar[21];
	double now = mono_now();
	long fill;

	if (!p->tty || (!final && now - last < 0.1))
		return;
	last = now;
	fill = p->total > 0 ? p->done * 20 / p->total : 20;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(20 - fill));
	bar[20] = '\0';
	fprintf(stderr, "\rbouncer: %-8s [%s] %ld/%ld %s, %ld %s%s",
	    p->phase, bar, p->done, p->total, p->unit, p->hits, p->hits_what,
	    final ? "\n" : "");
	fflush(stderr);
}

/* bouncer_progress_start - a new line for phase; strings borrowed. */
void
bouncer_progress_start(struct bouncer_progress *p, const char *phase,
    const char *unit, const char *hits_what, long total)
{
	memset(p, 0, sizeof(*p));
	p->phase = phase;
	p->unit = unit;
	p->hits_what = hits_what;
	p->total = total;
	p->tty = isatty(STDERR_FILENO);
	bouncer_progress_show(p, 0);
}

/* bouncer_progress_step - one unit done, hit of them acted on. */
void
bouncer_progress_step(struct bouncer_progress *p, int hit)
{
	p->done++;
	p->hits += hit;
	bouncer_progress_show(p, 0);
}
