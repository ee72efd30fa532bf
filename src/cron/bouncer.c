/* SPDX-License-Identifier: MIT */
/*
 * bouncer - daily: turn bounce scores into bouncing status, probes and removal.
 *
 * Run from cron (deploy/crontab).  This version checks that it can reach
 * the database and reports what it found; the processing itself arrives with
 * the issue that builds it.  Exit status 0 on success, 1 on failure.
 */
#include "config.h"
#include "daemon.h"

static int
bouncer_job(void)
{
	return daemon_cron_census("SELECT count(*) FROM bounce_state");
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
