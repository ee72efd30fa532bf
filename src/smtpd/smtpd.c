/* SPDX-License-Identifier: MIT */
/*
 * smtpd - inbound SMTP for the service's domains, behind nginx's mail proxy.
 *
 * Endpoints: SMTP on smtpd_smtp_port (nginx connects, passes the real client
 * with XCLIENT); HTTP GET /v1/auth for nginx's auth_http, which picks the
 * backend for each connection; /healthz and /metrics.  Trusts: XCLIENT only
 * from smtpd_xclient_hosts; auth_http only with the API secret.  Until
 * routing to messageserver lands, transactions get a temporary 451 so that
 * senders keep their mail and retry.
 */
#include <stdio.h>

#include <event2/thread.h>

#include "api_proto.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "smtpd.h"

static struct event_base *smtpd_base;

/* smtpd_auth - nginx auth_http: send the session to our SMTP listener. */
static int
smtpd_auth(struct httpd_req *req)
{
	char port[16];
	const char *hdrs[] = {
		"Auth-Status", "OK",
		"Auth-Server", cfg.listen_host,
		"Auth-Port", port,
		NULL,
	};

	snprintf(port, sizeof(port), "%d", cfg.smtpd_smtp_port);
	log_debug("auth_http: client %s to %s",
	    httpd_req_header(req, "Client-IP") ?: "?",
	    httpd_req_header(req, "Auth-SMTP-To") ?: "?");
	return httpd_reply_with(req, 200, hdrs, "text/plain", "", 0);
}

static const struct httpd_route smtpd_routes[] = {
	{ "GET", API_SMTPD_AUTH, smtpd_auth, 0, 0 },
	HTTPD_ROUTE_END
};

static int
smtpd_init(void)
{
	if (evthread_use_pthreads() == -1) {
		log_err("smtpd: libevent without thread support");
		return -1;
	}
	if ((smtpd_base = event_base_new()) == NULL) {
		log_err("smtpd: cannot create event base");
		return -1;
	}
	return smtpd_listen(smtpd_base, cfg.listen_host, cfg.smtpd_smtp_port);
}

static void
smtpd_run(void)
{
	event_base_loop(smtpd_base, EVLOOP_NO_EXIT_ON_EMPTY);
}

static void
smtpd_stop(void)
{
	event_base_loopbreak(smtpd_base);
}

static void
smtpd_fini(void)
{
	smtpd_close();
	event_base_free(smtpd_base);
}

static const struct daemon_spec smtpd_spec = {
	.name = "smtpd",
	.port = &cfg.smtpd_port,
	.routes = smtpd_routes,
	.init = smtpd_init,
	.run = smtpd_run,
	.stop = smtpd_stop,
	.fini = smtpd_fini,
};

int
main(int argc, char **argv)
{
	daemon_main(argc, argv, &smtpd_spec);
}
