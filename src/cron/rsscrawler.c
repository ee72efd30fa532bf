/* SPDX-License-Identifier: MIT */
/*
 * rsscrawler - fetch the RSS/Atom feeds integrated with groups and post new items.
 *
 * Run from cron (deploy/crontab).  This version checks that it can reach
 * the database and reports what it found; the processing itself arrives with
 * the issue that builds it.  Exit status 0 on success, 1 on failure.
 */
#include <stdlib.h>

#include "config.h"
#include "daemon.h"
#include "db.h"
#include "log.h"

static int
rsscrawler_job(void)
{
	struct db *d;
	PGresult *r;

	if ((d = db_get(daemon_db)) == NULL)
		return -1;
	r = db_query(d, "SELECT count(*) FROM feeds", DB_NOPARAMS);
	db_put(daemon_db, d);
	if (r == NULL)
		return -1;
	log_info("rsscrawler: %s candidate(s), nothing processed yet",
	    PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
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
