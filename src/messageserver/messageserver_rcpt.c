/* SPDX-License-Identifier: MIT */
/*
 * messageserver_rcpt.c - POST /v1/rcpt: what does a recipient address
 * mean here?
 *
 * local@domain, the domain compared case-insensitively, must be cfg.domain
 * or a row of domains (else 403).  The local part (lower-cased) is
 *	group			post to the group
 *	group+owner		the group's owners
 *	group+bounces-TOKEN	a VERP bounce; detail = TOKEN
 *	group+COMMAND		an email command (ms_commands below)
 *	group+COMMAND-ARG	one with an argument (ms_arg_commands)
 * for an existing group of that domain, or a forward_rules row (detail =
 * the target address, or group@domain of the target group); anything else
 * is 404.  The database being unreachable is 503.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api_proto.h"
#include "config.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "messageserver.h"
#include "xalloc.h"

/* The email commands, as group+<command>@domain. */
static const char *const ms_commands[] = {
	"subscribe", "unsubscribe", "join", "leave", "signoff", "help",
	"digest", "plaindigest", "summary", "special", "nomail", "mail",
	"single", "individual", "confirm", NULL
};

/* Commands with an argument, as group+<command>-<arg>@domain: signed
 * tokens (approve, reject, confirm, unsubscribe), a date (nomail-until)
 * or a topic or hashtag (mute, follow); detail = the argument. */
static const char *const ms_arg_commands[] = {
	"approve", "reject", "confirm", "unsubscribe", "nomail-until",
	"mute", "follow", NULL
};

#define MS_BOUNCE_PREFIX	"bounces"

/* lower - ASCII lower-case s in place. */
static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* arg_command - 1 if s is "<command>-<arg>" for one of ms_arg_commands,
 * with r's command and detail set; the detail comes from orig, the same
 * text before lower-casing, since tokens are case-sensitive. */
static int
arg_command(const char *s, const char *orig, struct ms_route *r)
{
	size_t i, n;

	for (i = 0; ms_arg_commands[i] != NULL; i++) {
		n = strlen(ms_arg_commands[i]);
		if (strncmp(s, ms_arg_commands[i], n) != 0 || s[n] != '-' ||
		    s[n + 1] == '\0')
			continue;
		strlcpy_chk(r->command, ms_arg_commands[i],
		    sizeof(r->command));
		strlcpy_chk(r->detail, orig + n + 1, sizeof(r->detail));
		return 1;
	}
	return 0;
}

/* is_command - 1 if s is one of ms_commands. */
static int
is_command(const char *s)
{
	size_t i;

	for (i = 0; ms_commands[i] != NULL; i++)
		if (strcmp(s, ms_commands[i]) == 0)
			return 1;
	return 0;
}

enum ms_rcpt_status
messageserver_rcpt_resolve(struct db *d, const char *addr,
    struct ms_route *r)
{
	char local[MS_ADDR_MAX + 1], domain[MS_ADDR_MAX + 1];
	char orig[MS_ADDR_MAX + 1];
	char group[MS_ADDR_MAX + 1], target[MS_ADDR_MAX + 1];
	const char *at, *plus, *ext;
	int found;

	memset(r, 0, sizeof(*r));
	at = strrchr(addr, '@');
	/* the local part may exceed RFC 5321's 64 octets: VERP tokens */
	if (at == NULL || at == addr || at[1] == '\0' ||
	    strlen(at + 1) > 253)
		return MS_RCPT_UNKNOWN;
	snprintf(local, sizeof(local), "%.*s", (int)(at - addr), addr);
	strlcpy_chk(orig, local, sizeof(orig));
	strlcpy_chk(domain, at + 1, sizeof(domain));
	lower(local);
	lower(domain);

	if (cfg.domain == NULL || strcasecmp(domain, cfg.domain) != 0) {
		found = db_query_value(d, "SELECT 1 FROM domains "
		    "WHERE name = $1", DB_PARAMS(domain), NULL, 0);
		if (found == -1)
			return MS_RCPT_TEMPFAIL;
		if (found == 0)
			return MS_RCPT_FOREIGN;
	}
	strlcpy_chk(r->domain, domain, sizeof(r->domain));

	plus = strchr(local, '+');
	snprintf(group, sizeof(group), "%.*s",
	    (int)(plus ? (size_t)(plus - local) : strlen(local)), local);
	ext = plus ? plus + 1 : NULL;
	found = db_query_value(d, "SELECT 1 FROM groups WHERE domain = $1 AND "
	    "name = $2 AND status <> 'disabled'", DB_PARAMS(domain, group),
	    NULL, 0);
	if (found == -1)
		return MS_RCPT_TEMPFAIL;
	if (found == 1) {
		strlcpy_chk(r->group, group, sizeof(r->group));
		if (ext == NULL) {
			r->kind = MS_ROUTE_POST;
			return MS_RCPT_OK;
		}
		if (strcmp(ext, "owner") == 0) {
			r->kind = MS_ROUTE_OWNER;
			return MS_RCPT_OK;
		}
		if (strncmp(ext, MS_BOUNCE_PREFIX,
		    strlen(MS_BOUNCE_PREFIX)) == 0 &&
		    (ext[strlen(MS_BOUNCE_PREFIX)] == '\0' ||
		    ext[strlen(MS_BOUNCE_PREFIX)] == '-')) {
			r->kind = MS_ROUTE_BOUNCE;
			ext += strlen(MS_BOUNCE_PREFIX);
			/* the token keeps its case */
			strlcpy_chk(r->detail, *ext == '-' ?
			    orig + (ext + 1 - local) : "", sizeof(r->detail));
			return MS_RCPT_OK;
		}
		if (is_command(ext)) {
			r->kind = MS_ROUTE_COMMAND;
			strlcpy_chk(r->command, ext, sizeof(r->command));
			return MS_RCPT_OK;
		}
		if (arg_command(ext, orig + (ext - local), r)) {
			r->kind = MS_ROUTE_COMMAND;
			return MS_RCPT_OK;
		}
		r->group[0] = '\0';
	}

	found = db_query_value(d, "SELECT coalesce(f.target_address, "
	    "g.name || '@' || g.domain) FROM forward_rules f "
	    "LEFT JOIN groups g ON g.id = f.target_group_id "
	    "WHERE f.domain = $1 AND f.local_part = $2 AND f.enabled",
	    DB_PARAMS(domain, local), target, sizeof(target));
	if (found == -1)
		return MS_RCPT_TEMPFAIL;
	if (found == 1) {
		r->kind = MS_ROUTE_FORWARD;
		strlcpy_chk(r->detail, target, sizeof(r->detail));
		return MS_RCPT_OK;
	}
	return MS_RCPT_UNKNOWN;
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
