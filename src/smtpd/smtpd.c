/* SPDX-License-Identifier: MIT */
/*
 * smtpd - inbound SMTP for the service's domains, behind nginx's mail proxy.
 *
 * Endpoints: SMTP on smtpd_smtp_port (nginx connects, passes the real client
 * with XCLIENT); HTTP GET /v1/auth for nginx's auth_http, which picks the
 * backend for each connection and refuses unknown or foreign recipients
 * before the client reaches us; /healthz and /metrics.  Recipients are
 * checked and messages handed over with messageserver's /v1/rcpt and
 * /v1/inbound (a message is acknowledged with 250 only once messageserver
 * has committed it).  Trusts: XCLIENT only from smtpd_xclient_hosts;
 * auth_http only with the API secret.  Keeps no privileges; reads the TLS
 * key at start-up when smtpd_tls_cert/smtpd_tls_key are set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/thread.h>

#include "api_proto.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "messageserver_clnt.h"
#include "metrics.h"
#include "smtp_parse.h"
#include "smtpd.h"

/* Calls to messageserver that may wait at once.  A worker only waits:
 * messageserver answers /v1/inbound after a COMMIT it shares with the
 * other calls waiting (its group commit), so the more sessions can wait
 * together, the fewer commits; 4 made batches of at most 4. */
#define SMTPD_WORKERS	32

struct messageserver_clnt *smtpd_ms;
static struct event_base *smtpd_base;
static struct metric *m_auth_known;

/* auth_first_rcpt - the address in nginx's Auth-SMTP-To ("RCPT TO:<a>
 * ..."); -1 if it does not parse. */
static int
auth_first_rcpt(const char *hdr, char *addr, size_t len)
{
	struct smtp_rcpt r;
	char err[SMTP_PARSE_ERR_MAX], line[SMTP_MAX_CMD_LINE + 1];
	const char *p;

	if (hdr == NULL || strncasecmp(hdr, "RCPT ", 5) != 0)
		return -1;
	if (strlcpy_chk(line, hdr + 5, sizeof(line)) == -1)
		return -1;
	/* nginx passes the whole command; parameters are our business
	 * later, at RCPT itself. */
	if ((p = strchr(line, '>')) != NULL)
		line[p - line + 1] = '\0';
	if (smtp_parse_rcpt(line, 1, &r, err, sizeof(err)) != 0)
		return -1;
	if (strchr(r.addr, '@') == NULL)
		snprintf(addr, len, "postmaster@%s", cfg.domain);
	else if (strlcpy_chk(addr, r.addr, len) == -1)
		return -1;
	return 0;
}

/* smtpd_auth - nginx auth_http: check the first recipient, then send the
 * session to our SMTP listener.  The reply code goes in Auth-Error-Code,
 * never in Auth-Status (nginx would print it twice). */
static int
smtpd_auth(struct httpd_req *req)
{
	char port[16], addr[SMTP_ADDR_MAX + 1];
	const char *to = httpd_req_header(req, "Auth-SMTP-To");
	struct ms_route route;
	const char *ok[] = {
		"Auth-Status", "OK",
		"Auth-Server", cfg.listen_host,
		"Auth-Port", port,
		NULL,
	};
	const char *unknown[] = {
		"Auth-Status", "no such group",
		"Auth-Error-Code", "550 5.1.1",
		NULL,
	};
	const char *foreign[] = {
		"Auth-Status", "relay not permitted",
		"Auth-Error-Code", "550 5.7.1",
		NULL,
	};
	const char *later[] = {
		"Auth-Status", "try later",
		"Auth-Wait", "1",
		"Auth-Error-Code", "451 4.3.0",
		NULL,
	};
	const char **hdrs = ok;
	int parsed;

	snprintf(port, sizeof(port), "%d", cfg.smtpd_smtp_port);
	/* Without a recipient (or one we cannot parse) smtpd decides. */
	parsed = auth_first_rcpt(to, addr, sizeof(addr)) == 0;
	if (parsed && smtpd_routes_known(addr)) {
		/* routed less than a second ago: no need to ask */
		metric_add(m_auth_known, 1);
		smtpd_routes_put(httpd_req_header(req, "Client-IP"), addr);
	} else if (parsed) {
		switch (messageserver_clnt_rcpt(smtpd_ms, addr, &route)) {
		case MS_OK:
			smtpd_routes_learn(addr);
			smtpd_routes_put(httpd_req_header(req, "Client-IP"),
			    addr);
			break;
		case MS_UNKNOWN:
			hdrs = unknown;
			break;
		case MS_FOREIGN:
			hdrs = foreign;
			break;
		default:
			hdrs = later;
			break;
		}
	}
	log_debug("auth_http: client %s to %s: %s",
	    httpd_req_header(req, "Client-IP") ?: "?", to ?: "?", hdrs[1]);
	return httpd_reply_with(req, 200, hdrs, "text/plain", "", 0);
}

static const struct httpd_route smtpd_routes[] = {
	{ "GET", API_SMTPD_AUTH, smtpd_auth, 0, 0 },
	HTTPD_ROUTE_END
};

static int
smtpd_init(void)
{
	char *url;

	if (evthread_use_pthreads() == -1) {
		log_err("smtpd: libevent without thread support");
		return -1;
	}
	if ((smtpd_base = event_base_new()) == NULL) {
		log_err("smtpd: cannot create event base");
		return -1;
	}
	m_auth_known = metric_counter("smtpd_auth_known_total",
	    "auth_http answers given without asking messageserver", NULL);
	url = config_url(&cfg, cfg.messageserver_port);
	smtpd_ms = messageserver_clnt_new(url, daemon_api_secret,
	    cfg.http_timeout_ms);
	free(url);
	if (smtpd_tls_init() == -1 ||
	    smtpd_worker_start(smtpd_base, SMTPD_WORKERS) == -1)
		return -1;
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
	smtpd_worker_stop();
	event_base_free(smtpd_base);
	smtpd_ms = messageserver_clnt_free(smtpd_ms);
	smtpd_tls_fini();
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
