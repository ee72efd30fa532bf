/* SPDX-License-Identifier: MIT */
/*
 * web_bounce.c - the restore link in a bounce probe (src/cron/bouncer.c).
 *
 *	GET /bounce?t=TOKEN	a page that names the address and, when its
 *				delivery is paused, asks; its button POSTs
 *				the same URL
 *	POST /bounce?t=TOKEN	puts the account's bounce state back to ok
 *
 * TOKEN is token.h's (label and purpose "bounce", payload the account id,
 * expiring a few weeks after the last probe): holding it is the authority,
 * as the probe reached only the address's owner.  GET never changes
 * anything, since mail scanners follow links.  Restoring sets status ok,
 * probes_sent 0, bouncing_since and bounced_at NULL, ok_since now (the
 * bouncer then judges only later bounces) and logs member.bounce_restore;
 * an address that is not paused is left alone and the page says so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "strbuf.h"
#include "token.h"
#include "web.h"
#include "xalloc.h"

#define BOUNCE_PURPOSE		"bounce"
#define BOUNCE_TOKEN_MAX	512

/* account_of - the account id the request's token names into id: 0, or
 * TOKEN_BAD / TOKEN_EXPIRED (missing, malformed, forged or old). */
static int
account_of(struct httpd_req *req, char *id, size_t len)
{
	unsigned char key[TOKEN_KEY_LEN];
	const char *t = httpd_req_query(req, "t");
	char *payload = NULL;
	size_t plen;
	int rc;

	if (t == NULL || strlen(t) > BOUNCE_TOKEN_MAX || cfg.secret == NULL)
		return TOKEN_BAD;
	token_derive(cfg.secret, strlen(cfg.secret), BOUNCE_PURPOSE, key);
	rc = token_verify(key, BOUNCE_PURPOSE, t, time(NULL), &payload, &plen);
	if (rc == TOKEN_OK && (plen == 0 || plen >= len ||
	    strspn(payload, "0123456789") != plen))
		rc = TOKEN_BAD;
	if (rc == TOKEN_OK)
		memcpy(id, payload, plen + 1);
	free(payload);
	return rc;
}

/* reply_page - a small page with a heading and a paragraph (escaped), and
 * the restore button when form_token is not NULL. */
static int
reply_page(struct httpd_req *req, unsigned status, const char *title,
    const char *text, const char *form_token)
{
	struct strbuf *sb = strbuf_new(2048);
	int rc;

	web_page_head(sb, title);
	strbuf_puts(sb, "<h1 class=\"h3 mb-3\">");
	web_html_escape(sb, title);
	strbuf_puts(sb, "</h1><p>");
	web_html_escape(sb, text);
	strbuf_puts(sb, "</p>");
	if (form_token != NULL) {
		strbuf_puts(sb, "<form method=\"post\" action=\"/bounce?t=");
		web_html_escape(sb, form_token);
		strbuf_puts(sb, "\"><button type=\"submit\" "
		    "class=\"btn btn-primary\">Restore delivery</button>"
		    "</form>");
	}
	strbuf_puts(sb, "</main></body></html>\n");
	rc = httpd_reply(req, status, "text/html; charset=utf-8", sb->buf,
	    sb->len);
	strbuf_free(sb);
	return rc;
}

/* bad_link - the page for a token that failed. */
static int
bad_link(struct httpd_req *req, int why)
{
	if (why == TOKEN_EXPIRED)
		return reply_page(req, 400, "Link expired",
		    "This link to restore delivery has expired. Sign in, or "
		    "ask the group's owners, to have mail sent to you again.",
		    NULL);
	return reply_page(req, 400, "Not a valid link",
	    "This link to restore delivery is damaged or not ours.", NULL);
}

/* lookup - the account's address and bounce status ("ok" without a state
 * row): 1, 0 when the account is gone, -1 on error. */
static int
lookup(struct db *d, const char *id, char *email, size_t elen, char *status,
    size_t slen)
{
	PGresult *r;
	int found;

	r = db_query(d, "SELECT a.email, coalesce(s.status, 'ok') FROM "
	    "accounts a LEFT JOIN bounce_state s ON s.account_id = a.id "
	    "WHERE a.id = $1::bigint", DB_PARAMS(id));
	if (r == NULL)
		return -1;
	if ((found = PQntuples(r) > 0)) {
		snprintf(email, elen, "%s", PQgetvalue(r, 0, 0));
		snprintf(status, slen, "%s", PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	return found;
}

int
web_bounce_page(struct httpd_req *req)
{
	char id[32], email[320], status[16], *text;
	struct db *d;
	int rc;

	if ((rc = account_of(req, id, sizeof(id))) != TOKEN_OK)
		return bad_link(req, rc);
	if ((d = db_get(daemon_db)) == NULL)
		return httpd_reply_error(req, 503, "database unavailable");
	rc = lookup(d, id, email, sizeof(email), status, sizeof(status));
	db_put(daemon_db, d);
	if (rc == -1)
		return httpd_reply_error(req, 503, "database unavailable");
	if (rc == 0)
		return reply_page(req, 404, "No such address",
		    "The address this link was for is no longer known here.",
		    NULL);
	if (strcmp(status, "ok") == 0) {
		text = xasprintf("Mail is being delivered to %s; there is "
		    "nothing to restore.", email);
		rc = reply_page(req, 200, "Delivery is on", text, NULL);
	} else {
		text = xasprintf("Mail to %s bounced, so the groups stopped "
		    "sending to it. If this address works again, restore "
		    "delivery.", email);
		rc = reply_page(req, 200, "Restore delivery", text,
		    httpd_req_query(req, "t"));
	}
	free(text);
	return rc;
}

int
web_bounce_post(struct httpd_req *req)
{
	char id[32], email[320] = "", was[16], *text;
	struct db *d;
	int rc;

	if ((rc = account_of(req, id, sizeof(id))) != TOKEN_OK)
		return bad_link(req, rc);
	if ((d = db_get(daemon_db)) == NULL)
		return httpd_reply_error(req, 503, "database unavailable");
	if (db_begin(d) == -1) {
		db_put(daemon_db, d);
		return httpd_reply_error(req, 503, "database unavailable");
	}
	/* the old status comes back from the row as it was before */
	rc = db_query_value(d, "UPDATE bounce_state s SET status = 'ok', "
	    "probes_sent = 0, bouncing_since = NULL, bounced_at = NULL, "
	    "ok_since = now() FROM bounce_state o WHERE o.account_id = "
	    "s.account_id AND s.account_id = $1::bigint AND s.status <> 'ok' "
	    "RETURNING o.status", DB_PARAMS(id), was, sizeof(was));
	if (rc == 1 && db_exec(d, "INSERT INTO activity_log (actor_id, "
	    "action, details) VALUES ($1::bigint, 'member.bounce_restore', "
	    "jsonb_build_object('via', 'probe link', 'was', $2::text))",
	    DB_PARAMS(id, was)) == -1)
		rc = -1;
	if (rc != -1 && lookup(d, id, email, sizeof(email), was,
	    sizeof(was)) == -1)
		rc = -1;
	if (rc == 1 && db_commit(d) == -1)
		rc = -1;
	db_put(daemon_db, d);	/* rolls back what was not committed */
	if (rc == -1)
		return httpd_reply_error(req, 503, "database unavailable");
	if (rc == 0 && email[0] == '\0')
		return reply_page(req, 404, "No such address",
		    "The address this link was for is no longer known here.",
		    NULL);
	if (rc == 0) {
		text = xasprintf("Mail is being delivered to %s; there was "
		    "nothing to restore.", email);
		rc = reply_page(req, 200, "Delivery is on", text, NULL);
	} else {
		log_info("web: delivery to %s (account %s) restored by its "
		    "bounce probe link", email, id);
		text = xasprintf("Mail to %s will be delivered again.", email);
		rc = reply_page(req, 200, "Delivery restored", text, NULL);
	}
	free(text);
	return rc;
}
