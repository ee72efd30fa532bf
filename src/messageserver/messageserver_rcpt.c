/* SPDX-License-Identifier: MIT */
/*
 * messageserver_rcpt.c - POST /v1/rcpt: what does a recipient address
 * mean here?
 *
 * local@domain, the domain compared case-insensitively, must be cfg.domain
 * or a row of domains (else 403).  The local part is parsed by cmdaddr.c
 * (post, owner, bounce with its token, a command with its argument); when
 * that names an existing group of the domain (status not disabled), that
 * is the route.  Otherwise, in order: an enabled forward_rules row for
 * (domain, local part), a rule of cfg.forward_rules (main domain only),
 * and postmaster, which RFC 5321 requires to be deliverable: without a
 * rule it goes to the site's first administrator (accounts.is_admin)
 * whose address is not at one of our domains.
 * Anything else is 404; the database being unreachable is 503.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api_proto.h"
#include "cmdaddr.h"
#include "config.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "messageserver.h"
#include "xalloc.h"

#define POSTMASTER	"postmaster"

static pthread_once_t rules_checked = PTHREAD_ONCE_INIT;

/* check_rules - say once that cfg.forward_rules has an entry we skip. */
static void
check_rules(void)
{
	char err[256];

	if (cmdaddr_forward_check(cfg.forward_rules, err, sizeof(err)) == -1)
		log_warnx("messageserver: %s; that entry is ignored", err);
}

/* group_route - *r for the parsed local part a of an existing group. */
static void
group_route(const struct cmdaddr *a, struct ms_route *r)
{
	strlcpy_chk(r->group, a->group, sizeof(r->group));
	switch (a->kind) {
	case CMDADDR_KIND_POST:
		r->kind = MS_ROUTE_POST;
		break;
	case CMDADDR_KIND_OWNER:
		r->kind = MS_ROUTE_OWNER;
		break;
	case CMDADDR_KIND_BOUNCE:
		r->kind = MS_ROUTE_BOUNCE;
		strlcpy_chk(r->detail, a->arg, sizeof(r->detail));
		break;
	case CMDADDR_KIND_COMMAND:
		r->kind = MS_ROUTE_COMMAND;
		strlcpy_chk(r->command, cmdaddr_name(a->cmd),
		    sizeof(r->command));
		strlcpy_chk(r->detail, a->arg, sizeof(r->detail));
		break;
	}
}

/* forward - the forward target of local@domain (local lower-cased) into
 * r: 1, 0 when nothing names it, -1 on a database error. */
static int
forward(struct db *d, const char *domain, const char *local,
    struct ms_route *r)
{
	char target[MS_ADDR_MAX + 1];
	int found;

	found = db_query_value(d, "SELECT coalesce(f.target_address, "
	    "g.name || '@' || g.domain) FROM forward_rules f "
	    "LEFT JOIN groups g ON g.id = f.target_group_id "
	    "WHERE f.domain = $1 AND f.local_part = $2 AND f.enabled",
	    DB_PARAMS(domain, local), target, sizeof(target));
	if (found == 0 && cfg.domain != NULL &&
	    strcasecmp(domain, cfg.domain) == 0) {
		pthread_once(&rules_checked, check_rules);
		found = cmdaddr_forward(cfg.forward_rules, local, target,
		    sizeof(target));
	}
	if (found == 0 && strcmp(local, POSTMASTER) == 0) {
		/* an address of ours is never a forward's receiver (the
		 * seeded admin@<domain> is one): such an admin would make
		 * postmaster a black hole, so only outside addresses count */
		found = db_query_value(d, "SELECT a.email FROM accounts a "
		    "WHERE a.is_admin AND a.status = 'active' AND "
		    "lower(substring(a.email FROM '@([^@]*)$')) <> lower($1) "
		    "AND NOT EXISTS (SELECT 1 FROM domains m WHERE m.name = "
		    "lower(substring(a.email FROM '@([^@]*)$'))) "
		    "ORDER BY a.id LIMIT 1",
		    DB_PARAMS(cfg.domain != NULL ? cfg.domain : ""), target,
		    sizeof(target));
		if (found == 0)
			log_warnx("messageserver: postmaster@%s has no forward "
			    "rule and the site no administrator with an "
			    "outside address: refused", domain);
	}
	if (found != 1)
		return found;
	r->kind = MS_ROUTE_FORWARD;
	strlcpy_chk(r->detail, target, sizeof(r->detail));
	return 1;
}

enum ms_rcpt_status
messageserver_rcpt_resolve(struct db *d, const char *addr,
    struct ms_route *r)
{
	char local[MS_ADDR_MAX + 1], domain[MS_ADDR_MAX + 1];
	struct cmdaddr a;
	const char *at;
	size_t i;
	int found;

	memset(r, 0, sizeof(*r));
	at = strrchr(addr, '@');
	/* the local part may exceed RFC 5321's 64 octets: VERP tokens */
	if (at == NULL || at == addr || at[1] == '\0' ||
	    strlen(at + 1) > 253 || (size_t)(at - addr) >= sizeof(local))
		return MS_RCPT_UNKNOWN;
	snprintf(local, sizeof(local), "%.*s", (int)(at - addr), addr);
	strlcpy_chk(domain, at + 1, sizeof(domain));
	for (i = 0; domain[i] != '\0'; i++)
		if (domain[i] >= 'A' && domain[i] <= 'Z')
			domain[i] = (char)(domain[i] - 'A' + 'a');

	if (cfg.domain == NULL || strcasecmp(domain, cfg.domain) != 0) {
		found = db_query_value(d, "SELECT 1 FROM domains "
		    "WHERE name = $1", DB_PARAMS(domain), NULL, 0);
		if (found == -1)
			return MS_RCPT_TEMPFAIL;
		if (found == 0)
			return MS_RCPT_FOREIGN;
	}
	strlcpy_chk(r->domain, domain, sizeof(r->domain));

	if (cmdaddr_parse(local, &a) == 0) {
		if (a.kind == CMDADDR_KIND_BOUNCE && a.group[0] == '\0') {
			/* bounces[+TOKEN]: the domain's own, no group */
			group_route(&a, r);
			return MS_RCPT_OK;
		}
		found = db_query_value(d, "SELECT 1 FROM groups WHERE "
		    "domain = $1 AND name = $2 AND status <> 'disabled'",
		    DB_PARAMS(domain, a.group), NULL, 0);
		if (found == -1)
			return MS_RCPT_TEMPFAIL;
		if (found == 1) {
			group_route(&a, r);
			return MS_RCPT_OK;
		}
	}

	/* forward rules name whole local parts, in lower case */
	for (i = 0; local[i] != '\0'; i++)
		if (local[i] >= 'A' && local[i] <= 'Z')
			local[i] = (char)(local[i] - 'A' + 'a');
	switch (forward(d, domain, local, r)) {
	case 1:
		return MS_RCPT_OK;
	case 0:
		return MS_RCPT_UNKNOWN;
	default:
		return MS_RCPT_TEMPFAIL;
	}
}

/* messageserver_rcpt_handler - POST /v1/rcpt {"rcpt": addr}. */
int
messageserver_rcpt_handler(struct httpd_req *req)
{
	const char *addr;
	struct ms_route r;
	enum ms_rcpt_status st;
	struct db *d;

	if (httpd_json_unpack(req, "{s:s!}", F_MS_RCPT, &addr) == -1)
		return 0;
	if (strlen(addr) > MS_ADDR_MAX)
		return httpd_reply_error(req, 400, "%s too long", F_MS_RCPT);
	if ((d = db_get(daemon_db)) == NULL)
		return httpd_reply_error(req, 503, "database unavailable");
	st = messageserver_rcpt_resolve(d, addr, &r);
	db_put(daemon_db, d);
	switch (st) {
	case MS_RCPT_OK:
		return httpd_reply_json(req, 200, json_pack(
		    "{s:s, s:s, s:s, s:s, s:s}",
		    F_MS_ROUTE, ms_route_name(r.kind), F_MS_GROUP, r.group,
		    F_MS_DOMAIN, r.domain, F_MS_COMMAND, r.command,
		    F_MS_DETAIL, r.detail));
	case MS_RCPT_FOREIGN:
		return httpd_reply_error(req, 403, "not a domain of ours");
	case MS_RCPT_UNKNOWN:
		return httpd_reply_error(req, 404, "no such recipient");
	default:
		return httpd_reply_error(req, 503, "database unavailable");
	}
}
