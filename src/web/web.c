/* SPDX-License-Identifier: MIT */
/*
 * web - the HTML user interface and JSON API, behind nginx.
 *
 * Endpoints: GET / (the group directory), GET and POST /unsubscribe (the
 * one-click link in members' mail); /healthz and /metrics.  Pages are
 * public (browsers do not hold the inter-daemon secret); nginx terminates
 * TLS and serves /static/.  web never sends mail: posts go to
 * messageserver.  Trusts: nothing from the browser.  Privileges: none
 * beyond its database role.
 */
#include "config.h"
#include "daemon.h"
#include "web.h"

static const struct httpd_route web_routes[] = {
	{ "GET", "/", web_page_home, HTTPD_PUBLIC, 0 },
	{ "GET", "/unsubscribe", web_unsubscribe_page, HTTPD_PUBLIC, 0 },
	{ "POST", "/unsubscribe", web_unsubscribe_post, HTTPD_PUBLIC, 4096 },
	HTTPD_ROUTE_END
};

static const struct daemon_spec web_spec = {
	.name = "web",
	.port = &cfg.web_port,
	.routes = web_routes,
	.flags = DAEMON_USES_DB,
};

int
main(int argc, char **argv)
{
	daemon_main(argc, argv, &web_spec);
}
