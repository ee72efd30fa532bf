/* SPDX-License-Identifier: MIT */
/*
 * messageserver_bounces.c - the bounce API:
 *	POST /v1/bounces			a receiver karl gave up on (a
 *						5xx, or retries past
 *						karl_max_age)
 *	GET /v1/accounts/{id}/bounces		an account's bounce state and
 *						its newest events
 *	GET /v1/groups/{domain}/{name}/bouncing	the group's members whose
 *						account is bouncing or bounced
 *
 * karl's report is an event with source 'karl' ('probe' for a bounce
 * probe's receiver), counted and applied to the account's state exactly
 * like a bounce that comes back by mail (messageserver_bounce_record): a
 * 5xx is hard, a receiver that aged out soft, and its enhanced status
 * decides whether it counts.  The VERP string names the account when its
 * address matches (a post copy "<account>.<message>", a probe
 * "p<account>"); otherwise the account is found by address.  One event
 * per (job, address): karl may repeat a report it is not sure arrived.
 * All routes are behind the API secret; docs/bounces.md has the JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_proto.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "messageserver.h"

/* A timestamptz column as ISO 8601 UTC text. */
#define ISO(col) "to_char(" col " AT TIME ZONE 'UTC', " \
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* report_account - the account, group and Message-ID of karl's report
 * into the buffers ("" when unknown); 0 or -1. */
static int
report_account(struct db *d, const char *rcpt, const struct ms_verp *v,
    char *acct, char *gid, char *msgid, size_t msgidlen)
{
	const char *vacct = "", *vmsg = "", *vout = "";
	PGresult *r;

	if (v != NULL && v->kind == MS_VERP_NOTICE)
		vout = v->id;
	else if (v != NULL) {
		vacct = v->id;
		vmsg = v->message;
	}
	r = db_query(d, "SELECT coalesce((SELECT id FROM accounts WHERE "
	    "id = nullif($2, '')::bigint AND lower(email) = lower($1)), "
	    "(SELECT id FROM accounts WHERE lower(email) = lower($1)))::text, "
	    "coalesce(m.group_id, o.group_id)::text, m.message_id "
	    "FROM (SELECT 1) AS one "
	    "LEFT JOIN messages m ON m.id = nullif($3, '')::bigint "
	    "LEFT JOIN outbox o ON o.id = nullif($4, '')::bigint",
	    DB_PARAMS(rcpt, vacct, vmsg, vout));
	if (r == NULL)
		return -1;
	snprintf(acct, 24, "%s", PQgetvalue(r, 0, 0));
	snprintf(gid, 24, "%s", PQgetvalue(r, 0, 1));
	snprintf(msgid, msgidlen, "%s", PQgetvalue(r, 0, 2));
	PQclear(r);
	return 0;
}

int
messageserver_bounces_handler(struct httpd_req *req)
{
	const char *job, *rcpt, *verp, *status, *diag;
	char acct[24], gid[24], msgid[MS_MSGID_MAX + 1];
	struct ms_bounce_event e;
	struct ms_verp v;
	json_int_t c;
	struct db *d;
	int n, isverp;

	if (httpd_json_unpack(req, "{s:s, s:s, s:s, s:I, s:s, s:s !}",
	    F_MS_JOB, &job, F_MS_RCPT, &rcpt, F_MS_VERP, &verp, F_MS_CODE, &c,
	    F_MS_DSN_STATUS, &status, F_MS_DIAGNOSTIC, &diag) == -1)
		return 0;
	if (strlen(job) == 0 || strlen(job) > 128 ||
	    strchr(rcpt, '@') == NULL || strlen(rcpt) > MS_ADDR_MAX ||
	    strlen(verp) > 128 || c < 0 || c > 599 || strlen(status) > 15)
		return httpd_reply_error(req, 400, "bad field");
	isverp = messageserver_verp_parse(verp, &v) == 0;
	if ((d = db_get(daemon_db)) == NULL)
		return httpd_reply_error(req, 503, "database unavailable");
	memset(&e, 0, sizeof(e));
	e.account_id = acct;
	e.email = rcpt;
	e.group_id = gid;
	e.type = c >= 500 ? "hard" : "soft";
	e.source = isverp && v.kind == MS_VERP_PROBE ? "probe" : "karl";
	e.action = "failed";
	e.status = status;
	e.diagnostic = diag;
	e.message_id = msgid;
	e.karl_job = job;
	e.counts = messageserver_bounce_counts(status);
	n = db_begin(d);
	if (n == 0)
		n = report_account(d, rcpt, isverp ? &v : NULL, acct, gid,
		    msgid, sizeof(msgid));
	if (n == 0)
		n = messageserver_bounce_record(d, &e);
	if (n != -1 && db_commit(d) == -1)
		n = -1;
	if (n == -1)
		db_rollback(d);
	db_put(daemon_db, d);
	if (n == -1)
		return httpd_reply_error(req, 503, "database failure");
	log_info("%s messageserver: karl gave up on %s (job %s, %d %s%s)%s",
	    httpd_req_cid(req), rcpt, job, (int)c, status,
	    e.counts ? "" : ", does not count",
	    n == 0 ? ": already recorded" : "");
	return httpd_reply_json(req, 200, json_pack("{s:s}", F_MS_STATUS,
	    n == 0 ? "duplicate" : "recorded"));
}

/* col - column i of row as a JSON string, null when NULL. */
static json_t *
col(const PGresult *r, int row, int i)
{
	return PQgetisnull(r, row, i) ? json_null() :
	    json_string(PQgetvalue(r, row, i));
}

/* icol - column i as a JSON integer. */
static json_t *
icol(const PGresult *r, int row, int i)
{
	return json_integer(strtoll(PQgetvalue(r, row, i), NULL, 10));
}

/* limit_of - ?limit=N within 1..max, max when absent; -1 when bad. */
static int
limit_of(struct httpd_req *req, int max)
{
	const char *q = httpd_req_query(req, "limit");
	char *end;
	long n;

	if (q == NULL)
		return max;
	n = strtol(q, &end, 10);
	if (*q == '\0' || *end != '\0' || n < 1 || n > max)
		return -1;
	return (int)n;
}

/* history - the JSON of account acct (limit events), or NULL when there
 * is no such account; *err set on a database failure. */
static json_t *
history(struct db *d, const char *acct, int limit, int *err)
{
	char lim[16];
	json_t *o, *evs;
	PGresult *r;
	int i, n;

	*err = 0;
	r = db_query(d, "SELECT a.id, a.email, coalesce(bs.status, 'ok'), "
	    ISO("bs.first_bounce_at") ", " ISO("bs.last_bounce_at") ", "
	    ISO("bs.bouncing_since") ", " ISO("bs.bounced_at") ", "
	    "coalesce(bs.probes_sent, 0), " ISO("bs.last_probe_at")
	    " FROM accounts a LEFT JOIN bounce_state bs ON "
	    "bs.account_id = a.id WHERE a.id = $1::bigint", DB_PARAMS(acct));
	if (r == NULL || PQntuples(r) == 0) {
		*err = r == NULL;
		PQclear(r);
		return NULL;
	}
	o = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
	    "account", icol(r, 0, 0), "email", col(r, 0, 1), "status",
	    col(r, 0, 2), "first_bounce_at", col(r, 0, 3), "last_bounce_at",
	    col(r, 0, 4), "bouncing_since", col(r, 0, 5), "bounced_at",
	    col(r, 0, 6), "probes_sent", icol(r, 0, 7), "last_probe_at",
	    col(r, 0, 8));
	PQclear(r);
	/* one more than asked tells whether there are more */
	snprintf(lim, sizeof(lim), "%d", limit + 1);
	r = db_query(d, "SELECT e.id, " ISO("e.received_at") ", e.type, "
	    "e.source, e.counts, e.dsn_action, e.dsn_status, e.diagnostic, "
	    "e.remote_mta, e.reporting_mta, e.original_message_id, g.name, "
	    "g.domain FROM bounce_events e LEFT JOIN groups g ON "
	    "g.id = e.group_id WHERE e.account_id = $1::bigint "
	    "ORDER BY e.received_at DESC, e.id DESC LIMIT $2::int",
	    DB_PARAMS(acct, lim));
	if (r == NULL) {
		*err = 1;
		json_decref(o);
		return NULL;
	}
	evs = json_array();
	n = PQntuples(r);
	for (i = 0; i < n && i < limit; i++)
		json_array_append_new(evs, json_pack("{s:o, s:o, s:o, s:o, "
		    "s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
		    "id", icol(r, i, 0), "received_at", col(r, i, 1),
		    "type", col(r, i, 2), "source", col(r, i, 3),
		    "counts", PQgetvalue(r, i, 4)[0] == 't',
		    "dsn_action", col(r, i, 5), "dsn_status", col(r, i, 6),
		    "diagnostic", col(r, i, 7), "remote_mta", col(r, i, 8),
		    "reporting_mta", col(r, i, 9), "message_id", col(r, i, 10),
		    "group", col(r, i, 11), "domain", col(r, i, 12)));
	json_object_set_new(o, "events", evs);
	json_object_set_new(o, "more", json_boolean(n > limit));
	PQclear(r);
	return o;
}

/* messageserver_bounce_history_handler - GET /v1/accounts/{id}/bounces. */
int
messageserver_bounce_history_handler(struct httpd_req *req)
{
	const char *rest = httpd_req_path(req) + strlen(MS_API_ACCOUNTS);
	const char *slash = strchr(rest, '/');
	char acct[24];
	size_t n = slash ? (size_t)(slash - rest) : 0;
	struct db *d;
	json_t *o;
	int limit, err;

	if (slash == NULL || strcmp(slash, "/bounces") != 0)
		return httpd_reply_error(req, 404, "no such endpoint");
	if (n == 0 || n > 18 || strspn(rest, "0123456789") != n)
		return httpd_reply_error(req, 404, "no such account");
	memcpy(acct, rest, n);
	acct[n] = '\0';
	if ((limit = limit_of(req, MS_BOUNCE_EVENTS_MAX)) == -1)
		return httpd_reply_error(req, 400, "limit must be 1..%d",
		    MS_BOUNCE_EVENTS_MAX);
	if ((d = db_get(daemon_db)) == NULL)
		return httpd_reply_error(req, 503, "database unavailable");
	o = history(d, acct, limit, &err);
	db_put(daemon_db, d);
	if (err)
		return httpd_reply_error(req, 503, "database failure");
	if (o == NULL)
		return httpd_reply_error(req, 404, "no such account");
	return httpd_reply_json(req, 200, o);
}

/* bouncing - the JSON list of group gid's bouncing members. */
static json_t *
bouncing(struct db *d, const char *gid, int limit)
{
	char lim[16];
	json_t *ms;
	PGresult *r;
	int i, n;

	snprintf(lim, sizeof(lim), "%d", limit + 1);
	r = db_query(d, "SELECT a.id, m.id, a.email, a.display_name, "
	    "bs.status, " ISO("bs.bouncing_since") ", " ISO("bs.bounced_at")
	    ", " ISO("bs.last_bounce_at") ", (SELECT count(*) FROM "
	    "bounce_events e WHERE e.account_id = a.id AND e.counts AND "
	    "e.received_at >= coalesce(bs.first_bounce_at, '-infinity')), "
	    "l.type, l.dsn_status, l.diagnostic "
	    "FROM memberships m JOIN accounts a ON a.id = m.account_id "
	    "JOIN bounce_state bs ON bs.account_id = a.id "
	    "LEFT JOIN LATERAL (SELECT e.type, e.dsn_status, e.diagnostic "
	    "FROM bounce_events e WHERE e.account_id = a.id AND e.counts "
	    "ORDER BY e.received_at DESC, e.id DESC LIMIT 1) l ON true "
	    "WHERE m.group_id = $1::bigint AND bs.status <> 'ok' "
	    "ORDER BY bs.last_bounce_at DESC NULLS LAST, a.id LIMIT $2::int",
	    DB_PARAMS(gid, lim));
	if (r == NULL)
		return NULL;
	ms = json_array();
	n = PQntuples(r);
	for (i = 0; i < n && i < limit; i++)
		json_array_append_new(ms, json_pack("{s:o, s:o, s:o, s:o, s:o, "
		    "s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
		    "account", icol(r, i, 0), "membership", icol(r, i, 1),
		    "email", col(r, i, 2), "name", col(r, i, 3),
		    "status", col(r, i, 4), "bouncing_since", col(r, i, 5),
		    "bounced_at", col(r, i, 6), "last_bounce_at", col(r, i, 7),
		    "bounces", icol(r, i, 8), "last_type", col(r, i, 9),
		    "dsn_status", col(r, i, 10), "diagnostic", col(r, i, 11)));
	PQclear(r);
	return json_pack("{s:o, s:b}", "members", ms, "more", n > limit);
}

/* ascii_lower - lower-case s in place (group names and domains are
 * stored lower-case). */
static void
ascii_lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* messageserver_bouncing_handler - GET
 * /v1/groups/{domain}/{name}/bouncing. */
int
messageserver_bouncing_handler(struct httpd_req *req)
{
	const char *rest = httpd_req_path(req) + strlen(MS_API_GROUPS);
	const char *s1 = strchr(rest, '/'), *s2 = s1 ? strchr(s1 + 1, '/') :
	    NULL;
	char domain[MS_ADDR_MAX + 1], name[MS_ADDR_MAX + 1], gid[24];
	struct db *d;
	json_t *o;
	int limit, found;

	if (s2 == NULL || strcmp(s2, "/bouncing") != 0)
		return httpd_reply_error(req, 404, "no such endpoint");
	if (s1 == rest || s2 == s1 + 1 || (size_t)(s1 - rest) >=
	    sizeof(domain) || (size_t)(s2 - s1 - 1) >= sizeof(name))
		return httpd_reply_error(req, 404, "no such group");
	snprintf(domain, sizeof(domain), "%.*s", (int)(s1 - rest), rest);
	snprintf(name, sizeof(name), "%.*s", (int)(s2 - s1 - 1), s1 + 1);
	ascii_lower(domain);
	ascii_lower(name);
	if ((limit = limit_of(req, MS_BOUNCING_MAX)) == -1)
		return httpd_reply_error(req, 400, "limit must be 1..%d",
		    MS_BOUNCING_MAX);
	if ((d = db_get(daemon_db)) == NULL)
		return httpd_reply_error(req, 503, "database unavailable");
	found = db_query_value(d, "SELECT id FROM groups WHERE "
	    "domain = $1 AND name = $2", DB_PARAMS(domain, name),
	    gid, sizeof(gid));
	o = found == 1 ? bouncing(d, gid, limit) : NULL;
	db_put(daemon_db, d);
	if (found == 0)
		return httpd_reply_error(req, 404, "no such group");
	if (o == NULL)
		return httpd_reply_error(req, 503, "database failure");
	json_object_set_new(o, "group", json_string(name));
	json_object_set_new(o, "domain", json_string(domain));
	return httpd_reply_json(req, 200, o);
}
