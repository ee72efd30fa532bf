/* SPDX-License-Identifier: MIT */
/*
 * rsscrawler - fetch the RSS/Atom feeds integrated with groups and post new items.
 *
 * Run from cron (deploy/crontab).  This version checks that it can reach
 * the database and reports what it found; the processing itself arrives with
 * the issue that builds it.  Exit status 0 on success, 1 on failure.
 */
#include "config.h"
#include "daemon.h"

static int
rsscrawler_job(void)
{
	return daemon_cron_census("SELECT count(*) FROM feeds");
}

static const struct daemon_spec rsscrawler_spec = {
	.name = "rsscrawler",
	.flags = DAEMON_NO_HTTP | DAEMON_USES_DB,
};

int
main(int argc, char **argv)
{
	return daemon_cron(argc, argv, &rsscrawler_spec, rsscrawler_job);
}
