/* SPDX-License-Identifier: MIT */
/*
 * senddigests - nightly digests (full, plain, daily summary) through karl.
 *
 * Run from cron (deploy/crontab).  This version checks that it can reach
 * the database and reports what it found; the processing itself arrives with
 * the issue that builds it.  Exit status 0 on success, 1 on failure.
 */
#include "config.h"
#include "daemon.h"

static int
senddigests_job(void)
{
	return daemon_cron_census("SELECT count(*) FROM memberships");
}

static const struct daemon_spec senddigests_spec = {
	.name = "senddigests",
	.flags = DAEMON_NO_HTTP | DAEMON_USES_DB,
};

int
main(int argc, char **argv)
{
	return daemon_cron(argc, argv, &senddigests_spec, senddigests_job);
}
