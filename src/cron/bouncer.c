/* SPDX-License-Identifier: MIT */
/*
 * bouncer - daily: soft bounces that persist, bounce probes, bounced
 * addresses and the moderators' notices, and the ageing out of events.
 *
 * A run, in order (docs/bouncer.md), one module per phase:
 *  1. soft	bouncer_soft.c: persisting soft bounces -> 'bouncing';
 *  2. probe	bouncer_probe.c: a probe with a restore link, the first at
 *		once, then one every bounce_probe_days, bounce_probes in all;
 *  3. bounced	bouncer_notice.c: unanswered probes -> 'bounced', and one
 *		notice per group to its owners and moderators;
 *  4. age out	bouncer_age.c: events older than bounce_event_days go.
 *
 * This file is the run: its lock, the phases in order, the summary.
 * Every decision is a timestamp compared in the UPDATE that acts on it,
 * and each account's change commits with the mail it causes, so a second
 * run changes nothing and sends nothing; a session advisory lock keeps two
 * runs from working at once.  Progress on stderr when it is a terminal
 * (bouncer_progress.c); one summary line to the log.  Exit 0, or 1 on a
 * database error.
 */
#include <string.h>

#include "bouncer.h"
#include "config.h"
#include "daemon.h"
#include "db.h"
#include "log.h"

/* Session advisory lock of a run: "grpsbnce" as a bigint. */
#define BOUNCER_LOCK_KEY	"7454143974126543717"

/* summary - the run's one line, whatever happened. */
static void
summary(const struct bouncer_tally *t, int rc)
{
	log_info("bouncer: %ld candidate(s) examined: %ld now bouncing, "
	    "%ld probe(s) sent, %ld in no group, %ld bounced, %ld moderator "
	    "notice(s), %ld old event(s) deleted%s", t->examined, t->bouncing,
	    t->probes, t->no_group, t->bounced, t->notices, t->deleted,
	    rc == 0 ? "" : " (incomplete)");
}

/* bouncer_run - the four phases under the run's lock on d. */
static int
bouncer_run(struct db *d, struct bouncer_tally *t)
{
	char locked[8];
	int rc = 0;

	if (db_query_value(d, "SELECT pg_try_advisory_lock("
	    BOUNCER_LOCK_KEY ")", DB_NOPARAMS, locked, sizeof(locked)) != 1)
		return -1;
	if (strcmp(locked, "t") != 0) {
		log_info("bouncer: another run is working; nothing done");
		return 0;
	}
	if (bouncer_soft_run(d, t) == -1 || bouncer_probe_run(d, t) == -1 ||
	    bouncer_notice_run(d, t) == -1 || bouncer_age_run(d, t) == -1)
		rc = -1;
	if (rc == 0 && daemon_stopping()) {
		log_warnx("bouncer: stopped by a signal before the end");
		rc = -1;
	}
	db_exec(d, "SELECT pg_advisory_unlock(" BOUNCER_LOCK_KEY ")",
	    DB_NOPARAMS);
	return rc;
}

/* bouncer_job - the cron job: one run on a pooled connection, and its
 * summary also when there was none. */
static int
bouncer_job(void)
{
	struct bouncer_tally t;
	struct db *d;
	int rc = -1;

	memset(&t, 0, sizeof(t));
	if (cfg.secret == NULL || cfg.public_url == NULL) {
		log_err("bouncer: no secret or public_url configured");
	} else if ((d = db_get(daemon_db)) != NULL) {
		rc = bouncer_run(d, &t);
		db_put(daemon_db, d);
	}
	summary(&t, rc);
	return rc;
}

static const struct daemon_spec bouncer_spec = {
	.name = "bouncer",
	.flags = DAEMON_NO_HTTP | DAEMON_USES_DB,
};

int
main(int argc, char **argv)
{
	return daemon_cron(argc, argv, &bouncer_spec, bouncer_job);
}
