/* SPDX-License-Identifier: MIT */
/*
 * bouncer_soft.c - phase 1: soft bounces that persist pause an address.
 *
 * messageserver turns an 'ok' account 'bouncing' at once on a counted
 * hard bounce, but a soft one may be a full mailbox for a day, so only
 * the daily run judges them: an 'ok' account whose counted soft bounces
 * since it was last ok form a run (no quiet spell over bounce_soft_days)
 * that began bounce_soft_days ago and still goes on (one within a few
 * days) becomes 'bouncing'.  The rule is evaluated inside the UPDATE that
 * requires status 'ok', so a second run changes nothing.
 */
#include "bouncer.h"
#include "config.h"
#include "daemon.h"
#include "db.h"
#include "log.h"

/* A soft bounce this recent means the address is still failing. */
#define BOUNCER_RECENT_DAYS	3

/* Counted soft bounces of account $1 since `since` form a run that began
 * at least $2 days ago and goes on (the latest within $3 days): a run
 * starts at the first event or after a quiet spell of more than $2 days,
 * as messageserver dates first_bounce_at.  NULL (false) without events. */
#define SOFT_SPAN(since)						\
	"(SELECT max(r.received_at) FILTER (WHERE r.starts) <= now() - "\
	"make_interval(days => $2::int) AND max(r.received_at) >= now() "\
	"- make_interval(days => $3::int) FROM (SELECT e.received_at, "	\
	"coalesce(e.received_at - lag(e.received_at) OVER (ORDER BY "	\
	"e.received_at) > make_interval(days => $2::int), true) AS "	\
	"starts FROM bounce_events e WHERE e.account_id = $1::bigint "	\
	"AND e.counts AND e.type = 'soft' AND e.received_at > " since	\
	") r)"

/* soft_one - make account id bouncing if its soft bounces persist: 1 if
 * it changed, 0 if not, -1 on error. */
static int
soft_one(struct db *d, const char *id, const char *days, const char *recent)
{
	long n;

	n = db_exec(d, "UPDATE bounce_state s SET status = 'bouncing', "
	    "bouncing_since = now(), bounced_at = NULL, probes_sent = 0 "
	    "WHERE s.account_id = $1::bigint AND s.status = 'ok' AND "
	    SOFT_SPAN("coalesce(s.ok_since, '-infinity')"),
	    DB_PARAMS(id, days, recent));
	if (n != 0)
		return n < 0 ? -1 : 1;
	/* an account messageserver never gave a state row */
	n = db_exec(d, "INSERT INTO bounce_state (account_id, status, "
	    "bouncing_since, first_bounce_at, last_bounce_at) "
	    "SELECT $1::bigint, 'bouncing', now(), min(received_at), "
	    "max(received_at) FROM bounce_events WHERE account_id = "
	    "$1::bigint AND counts AND type = 'soft' HAVING "
	    SOFT_SPAN("'-infinity'") " AND NOT EXISTS (SELECT 1 FROM "
	    "bounce_state WHERE account_id = $1::bigint) "
	    "ON CONFLICT (account_id) DO NOTHING",
	    DB_PARAMS(id, days, recent));
	return n < 0 ? -1 : n > 0;
}

/* bouncer_soft_run - phase 1 over every 'ok' account with counted soft
 * bounces since it was last ok; each account commits on its own. */
int
bouncer_soft_run(struct db *d, struct bouncer_tally *t)
{
	char days[16], recent[16];
	struct bouncer_progress p;
	PGresult *r;
	int i, n, rc = 0, changed;

	bouncer_int_str(days, sizeof(days), cfg.bounce_soft_days);
	bouncer_int_str(recent, sizeof(recent), cfg.bounce_soft_days <
	    BOUNCER_RECENT_DAYS ? cfg.bounce_soft_days : BOUNCER_RECENT_DAYS);
	r = db_query(d, "SELECT DISTINCT e.account_id FROM bounce_events e "
	    "LEFT JOIN bounce_state s ON s.account_id = e.account_id "
	    "WHERE e.account_id IS NOT NULL AND e.counts AND e.type = 'soft' "
	    "AND coalesce(s.status, 'ok') = 'ok' AND e.received_at > "
	    "coalesce(s.ok_since, '-infinity') ORDER BY 1", DB_NOPARAMS);
	if (r == NULL)
		return -1;
	n = PQntuples(r);
	bouncer_progress_start(&p, "soft", "accounts", "now bouncing", n);
	for (i = 0; i < n && !daemon_stopping(); i++) {
		if ((changed = soft_one(d, PQgetvalue(r, i, 0), days,
		    recent)) == -1) {
			rc = -1;
			break;
		}
		if (changed)
			log_info("bouncer: account %s is bouncing (soft "
			    "bounces for %s days)", PQgetvalue(r, i, 0), days);
		t->bouncing += changed;
		bouncer_progress_step(&p, changed);
	}
	t->examined += i;
	bouncer_progress_show(&p, 1);
	PQclear(r);
	return rc;
}
