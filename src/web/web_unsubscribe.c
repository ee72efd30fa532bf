/* SPDX-License-Identifier: MIT */
/*
 * web_unsubscribe.c - the unsubscribe link in every member's copy.
 *
 *	GET /unsubscribe?t=TOKEN	a page that names the group and asks;
 *					its button POSTs the same URL
 *	POST /unsubscribe?t=TOKEN	unsubscribes at once: RFC 8058 one-click
 *					(mail providers POST
 *					"List-Unsubscribe=One-Click", with no
 *					cookie and no session)
 *
 * TOKEN is the per-member token messageserver put in the footer data
 * (token.h, purpose "unsubscribe", payload the membership id, no expiry):
 * holding it is the authority, so no login is needed.  GET never changes
 * anything, as link scanners follow links.  Unsubscribing deletes the
 * membership and logs member.unsubscribe; a second POST finds nothing
 * and says so.
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

#define UNSUB_PURPOSE	"unsubscribe"
#define UNSUB_TOKEN_MAX	512

/* membership_of - the membership id the request's token names into id;
 * 0, or -1 when the token is missing, malformed or forged. */
static int
membership_of(struct httpd_req *req, char *id, size_t len)
{
	unsigned char key[TOKEN_KEY_LEN];
	const char *t = httpd_req_query(req, "t");
	char *payload = NULL;
	size_t plen;
	int rc;

	if (t == NULL || strlen(t) > UNSUB_TOKEN_MAX || cfg.secret == NULL)
		return -1;
	token_derive(cfg.secret, strlen(cfg.secret), UNSUB_PURPOSE, key);
	rc = token_verify(key, UNSUB_PURPOSE, t, time(NULL), &payload, &plen);
	if (rc != TOKEN_OK || plen == 0 || plen >= len ||
	    strspn(payload, "0123456789") != plen) {
		free(payload);
		return -1;
	}
	memcpy(id, payload, plen + 1);
	free(payload);
	return 0;
}

/* reply_page - a small page with a heading and a paragraph (escaped). */
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
		strbuf_puts(sb, "<form method=\"post\" action=\"/unsubscribe?t=");
		web_html_escape(sb, form_token);
		strbuf_puts(sb, "\"><input type=\"hidden\" "
		    "name=\"List-Unsubscribe\" value=\"One-Click\">"
		    "<button type=\"submit\" class=\"btn btn-danger\">"
		    "Unsubscribe</button></form>");
	}
	strbuf_puts(sb, "</main></body></html>\n");
	rc = httpd_reply(req, status, "text/html; charset=utf-8", sb->buf,
	    sb->len);
	strbuf_free(sb);
	return rc;
}

/* lookup - the member's address and group title of membership id; 1, 0
 * when it is gone, -1 on error. */
static int
lookup(struct db *d, const char *id, char *email, size_t elen, char *group,
    size_t glen)
{
	PGresult *r;
	int found;

	r = db_query(d, "SELECT a.email, coalesce(nullif(g.title, ''), "
	    "g.name) || ' (' || g.name || '@' || g.domain || ')' "
	    "FROM memberships m JOIN accounts a ON a.id = m.account_id "
	    "JOIN groups g ON g.id = m.group_id WHERE m.id = $1::bigint",
	    DB_PARAMS(id));
	if (r == NULL)
		return -1;
	if ((found = PQntuples(r) > 0)) {
		snprintf(email, elen, "%s", PQgetvalue(r, 0, 0));
		snprintf(group, glen, "%s", PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	return found;
}

int
web_unsubscribe_page(struct httpd_req *req)
{
	char id[32], email[320], group[600], *text;
	struct db *d;
	int rc;

	if (membership_of(req, id, sizeof(id)) == -1)
		return reply_page(req, 400, "Not a valid link",
		    "This unsubscribe link is damaged or not ours.", NULL);
	if ((d = db_get(daemon_db)) == NULL)
		return httpd_reply_error(req, 503, "database unavailable");
	rc = lookup(d, id, email, sizeof(email), group, sizeof(group));
	db_put(daemon_db, d);
	if (rc == -1)
		return httpd_reply_error(req, 503, "database unavailable");
	if (rc == 0)
		return reply_page(req, 200, "Not subscribed",
		    "This address is no longer a member of the group.", NULL);
	text = xasprintf("Stop %s's membership of %s? You will get no more "
	    "mail from the group.", email, group);
	rc = reply_page(req, 200, "Unsubscribe", text,
	    httpd_req_query(req, "t"));
	free(text);
	return rc;
}

int
web_unsubscribe_post(struct httpd_req *req)
{
	char id[32], email[320], group[600], *text;
	struct db *d;
	long n = 0;
	int rc;

	if (membership_of(req, id, sizeof(id)) == -1)
		return reply_page(req, 400, "Not a valid link",
		    "This unsubscribe link is damaged or not ours.", NULL);
	if ((d = db_get(daemon_db)) == NULL)
		return httpd_reply_error(req, 503, "database unavailable");
	rc = lookup(d, id, email, sizeof(email), group, sizeof(group));
	if (rc == 1 && (db_begin(d) == -1 ||
	    db_exec(d, "INSERT INTO activity_log (group_id, actor_id, action, "
	    "details) SELECT group_id, account_id, 'member.unsubscribe', "
	    "'{\"via\": \"one-click\"}' FROM memberships WHERE id = "
	    "$1::bigint", DB_PARAMS(id)) == -1 ||
	    (n = db_exec(d, "DELETE FROM memberships WHERE id = $1::bigint",
	    DB_PARAMS(id))) == -1 || db_commit(d) == -1))
		rc = -1;
	db_put(daemon_db, d);
	if (rc == -1)
		return httpd_reply_error(req, 503, "database unavailable");
	if (rc == 0 || n == 0)
		return reply_page(req, 200, "Not subscribed",
		    "This address is no longer a member of the group.", NULL);
	log_info("web: %s unsubscribed from %s (one-click)", email, group);
	text = xasprintf("%s is no longer a member of %s.", email, group);
	rc = reply_page(req, 200, "Unsubscribed", text, NULL);
	free(text);
	return rc;
}
