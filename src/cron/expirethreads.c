/* SPDX-License-Identifier: MIT */
/*
 * expirethreads - lock, delete or archive topics whose hashtags carry an expiry.
 *
 * Run from cron (deploy/crontab).  This version checks that it can reach
 * the database and reports what it found; the processing itself arrives with
 * the issue that builds it.  Exit status 0 on success, 1 on failure.
 */
#include "config.h"
#include "daemon.h"

static int
expirethreads_job(void)
{
	return daemon_cron_census("SELECT count(*) FROM hashtags");
}

static const struct daemon_spec expirethreads_spec = {
	.name = "expirethreads",
	.flags = DAEMON_NO_HTTP | DAEMON_USES_DB,
};

int
main(int argc, char **argv)
{
	return daemon_cron(argc, argv, &expirethreads_spec, expirethreads_job);
}
