/* SPDX-License-Identifier: MIT */
/*
 * messageserver - the one place group messages are processed.
 *
 * Whatever their source (smtpd, web, crawlers), messages will be checked
 * here (sender, permission, moderation, DMARC), archived to PostgreSQL and
 * fanned out through karl; bounces and email commands are processed here
 * too.  This version serves /healthz (including the database) and /metrics
 * while the message API is built.  Trusts: callers holding the API secret.
 */
#include "config.h"
#include "daemon.h"

static const struct daemon_spec messageserver_spec = {
	.name = "messageserver",
	.port = &cfg.messageserver_port,
	.flags = DAEMON_USES_DB,
	.max_body = 0,
};

int
main(int argc, char **argv)
{
	daemon_main(argc, argv, &messageserver_spec);
}
