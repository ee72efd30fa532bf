/* SPDX-License-Identifier: MIT */
/*
 * messageserver_bounces.c - POST /v1/bounces: a receiver karl gave up on
 * (a 5xx, or retries past karl_max_age), stored as a bounce event.
 *
 * The VERP string of a post's receiver is "<account id>.<message id>"
 * (messageserver_fanout.c), which names the account and, through the
 * message, the group.  Other jobs (notices) carry other strings; then the
 * account is found by address, if there is one.  One event per (job,
 * address): karl may repeat a report it is not sure arrived.  A 5xx is a
 * hard bounce; a receiver that aged out is soft.  Scoring and acting on
 * bounces belong to the bounce processing (bouncer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_proto.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "messageserver.h"


/* verp_ids - "<account>.<message>" into two decimal strings; 0 or -1. */
static int
verp_ids(const char *verp, char *acct, size_t alen, char *msg, size_t mlen)
{
	const char *dot = strchr(verp, '.');
	size_t n;

	if (dot == NULL || dot == verp || dot[1] == '\0')
		return -1;
	n = (size_t)(dot - verp);
	if (n >= alen || strlen(dot + 1) >= mlen ||
	    strspn(verp, "0123456789") != n ||
	    strspn(dot + 1, "0123456789") != strlen(dot + 1))
		return -1;
	memcpy(acct, verp, n);
	acct[n] = '\0';
	snprintf(msg, mlen, "%s", dot + 1);
	return 0;
}

int
messageserver_bounces_handler(struct httpd_req *req)
{
	const char *job, *rcpt, *verp, *status, *diag;
	char acct[24] = "", msg[24] = "", code[16], st[16];
	json_int_t c;
	struct db *d;
	long n;

	if (httpd_json_unpack(req, "{s:s, s:s, s:s, s:I, s:s, s:s !}",
	    F_MS_JOB, &job, F_MS_RCPT, &rcpt, F_MS_VERP, &verp, F_MS_CODE, &c,
	    F_MS_DSN_STATUS, &status, F_MS_DIAGNOSTIC, &diag) == -1)
		return 0;
	if (strlen(job) == 0 || strlen(job) > 128 ||
	    strchr(rcpt, '@') == NULL || strlen(rcpt) > MS_ADDR_MAX ||
	    strlen(verp) > 128 || c < 0 || c > 599 || strlen(status) > 15)
		return httpd_reply_error(req, 400, "bad field");
	if (verp[0] != '\0' && verp_ids(verp, acct, sizeof(acct), msg,
	    sizeof(msg)) == -1)
		acct[0] = msg[0] = '\0';	/* a notice's: not a member */
	snprintf(code, sizeof(code), "%d", (int)c);
	snprintf(st, sizeof(st), "%s", status);
	if ((d = db_get(daemon_db)) == NULL)
		return httpd_reply_error(req, 503, "database unavailable");
	/* the account: by VERP when it names one with this address, else by
	 * address; the group and Message-ID from the message */
	n = db_exec(d, "INSERT INTO bounce_events (account_id, email, "
	    "group_id, type, source, dsn_action, dsn_status, diagnostic, "
	    "original_message_id, karl_job) SELECT coalesce((SELECT id FROM "
	    "accounts WHERE id = nullif($3, '')::bigint AND lower(email) = "
	    "lower($2)), (SELECT id FROM accounts WHERE lower(email) = "
	    "lower($2))), $2, m.group_id, CASE WHEN $5::int >= 500 THEN "
	    "'hard' ELSE 'soft' END, 'karl', 'failed', nullif($6, ''), "
	    "left($7, 1000), m.message_id, $1 FROM (SELECT 1) AS one "
	    "LEFT JOIN messages m ON m.id = nullif($4, '')::bigint "
	    "ON CONFLICT (karl_job, lower(email)) WHERE karl_job IS NOT NULL "
	    "DO NOTHING", 7, (const char *[]){ job, rcpt, acct, msg, code,
	    st, diag });
	db_put(daemon_db, d);
	if (n == -1)
		return httpd_reply_error(req, 503, "database failure");
	log_info("%s messageserver: karl gave up on %s (job %s, %s %s)%s",
	    httpd_req_cid(req), rcpt, job, code, st,
	    n == 0 ? ": already recorded" : "");
	return httpd_reply_json(req, 200, json_pack("{s:s}", F_MS_STATUS,
	    n == 0 ? "duplicate" : "recorded"));
}
