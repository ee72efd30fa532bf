/* SPDX-License-Identifier: MIT */
/*
 * karl - the only process that sends mail.
 *
 * karl takes a message, a footer template, a VERP sender and the
 * receivers, stores the job in its leveldb spool before acknowledging,
 * renders each receiver's footer, DKIM-signs and delivers over SMTP with
 * retries.  This version opens the spool and serves /healthz and /metrics
 * while the delivery API is built.  Trusts: callers holding the API
 * secret.  Privileges: the only reader of the DKIM private keys.
 */
#include "config.h"
#include "daemon.h"
#include "karl.h"
#include "metrics.h"

static int
karl_init(void)
{
	if (karl_spool_open(cfg.karl_spool_dir) == -1)
		return -1;
	metric_gauge_fn("karl_spool_jobs", "jobs in the spool",
	    karl_spool_jobs);
	return 0;
}

static void
karl_fini(void)
{
	karl_spool_close();
}

static const struct daemon_spec karl_spec = {
	.name = "karl",
	.port = &cfg.karl_port,
	.init = karl_init,
	.fini = karl_fini,
};

int
main(int argc, char **argv)
{
	daemon_main(argc, argv, &karl_spec);
}
