/* SPDX-License-Identifier: MIT */
/*
 * karl - the only process that sends mail.
 *
 * karl takes a message, a footer template, a VERP sender and the
 * receivers, stores the job in its leveldb spool before acknowledging,
 * renders each receiver's footer, DKIM-signs and delivers over SMTP (or
 * into maildirs) with retries, reporting permanent failures to
 * messageserver.  Routes: POST /v1/send (a batch, synced to the spool
 * before the 202), GET /v1/jobs/{id}[/receivers|/message], GET /v1/stats
 * (delivery counts); see docs/karl.md.  Trusts: callers holding the API
 * secret.  Privileges: the only reader of the DKIM private keys.
 */
#include "config.h"
#include "daemon.h"
#include "karl.h"
#include "metrics.h"

/* Not const: init sets the send bound from the configuration. */
static struct httpd_route karl_routes[] = {
	{ "POST", API_KARL_SEND, karl_send_handler, HTTPD_JSON, 0 },
	{ "GET", API_KARL_JOBS, karl_jobs_handler, HTTPD_PREFIX, 0 },
	{ "GET", API_KARL_STATS, karl_stats_handler, 0, 0 },
	HTTPD_ROUTE_END
};

static int
karl_init(void)
{
	if (karl_spool_open(cfg.karl_spool_dir) == -1)
		return -1;
	karl_routes[0].max_body = karl_intake_max_body();
	karl_intake_init();
	metric_gauge_fn("karl_spool_jobs", "jobs in the spool",
	    karl_spool_jobs);
	return karl_deliver_init();
}

static void
karl_fini(void)
{
	karl_deliver_fini();
	karl_spool_close();
}

static const struct daemon_spec karl_spec = {
	.name = "karl",
	.port = &cfg.karl_port,
	.routes = karl_routes,
	.init = karl_init,
	.run = karl_deliver_run,
	.stop = karl_deliver_stop,
	.fini = karl_fini,
};

int
main(int argc, char **argv)
{
	daemon_main(argc, argv, &karl_spec);
}
