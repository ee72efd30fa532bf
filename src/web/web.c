/* SPDX-License-Identifier: MIT */
/*
 * web - the HTML user interface and JSON API, behind nginx.
 *
 * Endpoints: GET / (the group directory), GET and POST /unsubscribe (the
 * one-click link in members' mail), GET and POST /confirm (an emailed
 * confirmation link), GET and POST /bounce (a bounce probe's link that
 * restores delivery); /healthz and /metrics.  Pages are
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
	{ "GET", "/confirm", web_confirm_page, HTTPD_PUBLIC, 0 },
	{ "POST", "/confirm", web_confirm_post, HTTPD_PUBLIC, 4096 },
	{ "GET", "/bounce", web_bounce_page, HTTPD_PUBLIC, 0 },
	{ "POST", "/bounce", web_bounce_post, HTTPD_PUBLIC, 4096 },
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
