/* SPDX-License-Identifier: MIT */
/*
 * messageserver - the one place group messages are processed.
 *
 * Endpoints (messageserver_clnt.h has the bodies):
 *	POST /v1/rcpt		route one recipient (post, owner, command,
 *				bounce, forward) or refuse it (404/403)
 *	POST /v1/inbound	a message from smtpd: parsed with GMime, then
 *				the posting pipeline (policy, hold, archive);
 *				200 only after COMMIT, which concurrent
 *				requests share (messageserver_commit.c)
 *	POST /v1/posts		a post from web or a crawler, as fields: the
 *				same pipeline
 *	POST /v1/bounces	a receiver karl gave up on: a bounce event
 *	GET /v1/accounts/{id}/bounces, GET /v1/groups/{domain}/{name}/bouncing
 *				bounce state and history (docs/bounces.md)
 * plus /healthz (including the database) and /metrics.  Fan-out threads
 * hand archived posts and notices to karl from the outbox
 * (docs/messageserver.md).  Trusts: callers holding the API secret; the
 * message bytes themselves are hostile input.  Keeps no privileges.
 */
#include "api_proto.h"
#include "config.h"
#include "daemon.h"
#include "dns.h"
#include "log.h"
#include "messageserver.h"

/* text and html of a web post, JSON-escaped, and the other fields */
#define POSTS_MAX_BODY	(20 * 1024 * 1024)

/* Not const: init sets the inbound bound from the configuration. */
static struct httpd_route messageserver_routes[] = {
	{ "POST", API_MS_RCPT, messageserver_rcpt_handler, HTTPD_JSON, 0 },
	{ "POST", API_MS_INBOUND, messageserver_inbound_handler, HTTPD_JSON,
	    0 },
	{ "POST", API_MS_POSTS, messageserver_posts_handler, HTTPD_JSON,
	    POSTS_MAX_BODY },
	{ "POST", API_MS_BOUNCES, messageserver_bounces_handler, HTTPD_JSON,
	    0 },
	{ "GET", MS_API_ACCOUNTS, messageserver_bounce_history_handler,
	    HTTPD_PREFIX, 0 },
	{ "GET", MS_API_GROUPS, messageserver_bouncing_handler, HTTPD_PREFIX,
	    0 },
	HTTPD_ROUTE_END
};

/* messageserver_init - GMime, and the inbound body bound: base64 of the
 * largest message smtpd accepts plus room for the envelope. */
static int
messageserver_init(void)
{
	char err[256];

	if (dns_check_config(err, sizeof(err)) == -1) {
		log_warnx("messageserver: %s", err);
		return -1;
	}
	messageserver_mime_init();
	messageserver_count_init();
	messageserver_routes[1].max_body =
	    (size_t)cfg.smtpd_max_message / 3 * 4 + 4 + 64 * 1024;
	if (messageserver_commit_start() == -1)
		return -1;
	return messageserver_fanout_start(cfg.messageserver_fanout_threads);
}

/* After httpd_stop, which waits for the deferred answers. */
static void
messageserver_fini(void)
{
	messageserver_commit_stop();
	messageserver_fanout_stop();
	messageserver_mime_fini();
}

static const struct daemon_spec messageserver_spec = {
	.name = "messageserver",
	.port = &cfg.messageserver_port,
	.routes = messageserver_routes,
	.flags = DAEMON_USES_DB,
	.max_body = 0,
	.init = messageserver_init,
	.fini = messageserver_fini,
};

int
main(int argc, char **argv)
{
	daemon_main(argc, argv, &messageserver_spec);
}
