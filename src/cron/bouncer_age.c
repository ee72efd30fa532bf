/* SPDX-License-Identifier: MIT */
/*
 * bouncer_age.c - phase 4: old bounce events are forgotten.
 *
 * bounce_events older than bounce_event_days are deleted, at most
 * BOUNCER_DELETE_BATCH per statement: each DELETE is its own short
 * transaction, so the inbound side, which records new bounces, never
 * waits long on them.  A stop by signal ends the loop between two
 * batches with everything deleted so far committed.
 */
#include <stdlib.h>

#include "bouncer.h"
#include "config.h"
#include "daemon.h"
#include "db.h"

#define BOUNCER_DELETE_BATCH	"5000"	/* events per DELETE */

/* bouncer_age_run - delete old events in batches (short transactions, so
 * the inbound side is never blocked long). */
int
bouncer_age_run(struct db *d, struct bouncer_tally *t)
{
	char days[16], count[32];
	struct bouncer_progress p;
	long n;

	bouncer_int_str(days, sizeof(days), cfg.bounce_event_days);
	if (db_query_value(d, "SELECT count(*) FROM bounce_events WHERE "
	    "received_at < now() - make_interval(days => $1::int)",
	    DB_PARAMS(days), count, sizeof(count)) != 1)
		return -1;
	bouncer_progress_start(&p, "age out", "events", "deleted",
	    atol(count));
	do {
		n = db_exec(d, "DELETE FROM bounce_events WHERE id IN (SELECT "
		    "id FROM bounce_events WHERE received_at < now() - "
		    "make_interval(days => $1::int) LIMIT "
		    BOUNCER_DELETE_BATCH ")", DB_PARAMS(days));
		if (n == -1)
			return -1;
		t->deleted += n;
		/* a batch, not a row: count it all at once */
		p.done += n;
		p.hits += n;
		bouncer_progress_show(&p, 0);
	} while (n > 0 && !daemon_stopping());
	bouncer_progress_show(&p, 1);
	return 0;
}
