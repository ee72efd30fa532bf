/* SPDX-License-Identifier: MIT */
/*
 * bouncer.h - private interface between the bouncer's parts: the run and
 * its lock (bouncer.c), the four phases in their order (bouncer_soft.c,
 * bouncer_probe.c, bouncer_notice.c, bouncer_age.c), what the probe and
 * the notice share (bouncer_mail.c) and the terminal progress line
 * (bouncer_progress.c).  Each phase works on the run's connection, adds
 * to the run's tally and returns 0 or -1 (logged, or left to db.c).
 */
#ifndef BOUNCER_H
#define BOUNCER_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include <jansson.h>

struct db;
struct strbuf;

/* Cron starts a few seconds late or early: a probe 7 days minus this
 * ago counts as 7 days old, and a second run the same day still sees a
 * probe of today as fresh. */
#define BOUNCER_SLACK		"interval '1 hour'"

/* What a run did, for its summary line. */
struct bouncer_tally {
	long	examined;
	long	bouncing;
	long	probes;
	long	no_group;	/* bouncing, but in no group to probe from */
	long	bounced;
	long	notices;
	long	deleted;
};

/* bouncer_int_str - v in decimal into buf, a query parameter; returns
 * buf. */
static inline char *
bouncer_int_str(char *buf, size_t len, long v)
{
	snprintf(buf, len, "%ld", v);
	return buf;
}

/* bouncer_soft.c: 1. persisting soft bounces make an 'ok' account
 * 'bouncing'. */
int	 bouncer_soft_run(struct db *d, struct bouncer_tally *t);

/* bouncer_probe.c: 2. each due 'bouncing' account gets its probe, state
 * change and outbox row in one transaction. */
int	 bouncer_probe_run(struct db *d, struct bouncer_tally *t);

/* bouncer_notice.c: 3. exhausted 'bouncing' accounts become 'bounced' and
 * their groups' staff are told, all in one transaction. */
int	 bouncer_notice_run(struct db *d, struct bouncer_tally *t);

/* bouncer_age.c: 4. old bounce events are deleted in batches. */
int	 bouncer_age_run(struct db *d, struct bouncer_tally *t);

/* bouncer_mail.c: what the probe and the notice share. */
/* bouncer_mail_queue - queue a composed notice for receivers (a JSON
 * array, borrowed) through group gid, in d's transaction.  0 or -1. */
int	 bouncer_mail_queue(struct db *d, const char *gid,
	    const struct strbuf *msg, json_t *receivers);
/* bouncer_mail_group_label - "Title (name@domain)" or "name@domain" into
 * sb. */
void	 bouncer_mail_group_label(struct strbuf *sb, const char *name,
	    const char *domain, const char *title);

/* bouncer_progress.c: a phase's line on stderr, redrawn as it goes, when
 * stderr is a terminal; nothing otherwise. */
struct bouncer_progress {
	const char	*phase;
	const char	*unit;
	long		 total;
	long		 done;
	long		 hits;		/* what the phase did */
	const char	*hits_what;
	struct timespec	 shown;
	int		 tty;
};

/* bouncer_progress_start - begin phase's line over total units; the
 * strings are borrowed for the phase. */
void	 bouncer_progress_start(struct bouncer_progress *p,
	    const char *phase, const char *unit, const char *hits_what,
	    long total);
/* bouncer_progress_step - one unit done, hit (0 or 1) of them acted on. */
void	 bouncer_progress_step(struct bouncer_progress *p, int hit);
/* bouncer_progress_show - redraw the line, at most ten times a second
 * unless final (which ends the line). */
void	 bouncer_progress_show(struct bouncer_progress *p, int final);

#endif
