/* SPDX-License-Identifier: MIT */
/*
 * web_confirm.c - the link in an emailed confirmation request.
 *
 *	GET /confirm?t=TOKEN	a page that says what the link confirms
 *				(joining or leaving which group, for which
 *				address) with a button; changes nothing, as
 *				mail scanners follow links
 *	POST /confirm?t=TOKEN	confirms
 *
 * TOKEN is the one of the request's reply address group+confirm-TOKEN
 * (confirm.h: signed, naming a membership and the action, expiring).
 * Confirming on the web has exactly the effect of the reply by email
 * because it IS that reply: web hands messageserver a short message from
 * the member's address to group+confirm-TOKEN@domain (POST /v1/inbound,
 * as smtpd would), so the state changes, the moderators' notice of a
 * restricted group and the answer by mail all come from one place, and
 * web still never sends mail.  The page then reads the membership again
 * to say what happened.  A forged token is a 400 page; a spent or expired
 * one says so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "confirm.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "messageserver_clnt.h"
#include "strbuf.h"
#include "token.h"
#include "web.h"
#include "xalloc.h"

#define CONFIRM_MS_TIMEOUT	10000	/* ms for messageserver's answer */

/* What a token's membership looks like now. */
struct state {
	int	found;
	char	status[24];
	char	email[320];
	char	group[600];	/* "Title (name@domain)" */
	char	name[80];
	char	domain[260];
};

/* page - a small page: heading, paragraph, and the confirm button when
 * token is not NULL (all escaped). */
static int
page(struct httpd_req *req, unsigned status, const char *title,
    const char *text, const char *token, const char *button)
{
	struct strbuf *sb = strbuf_new(2048);
	int rc;

	web_page_head(sb, title);
	strbuf_puts(sb, "<h1 class=\"h3 mb-3\">");
	web_html_escape(sb, title);
	strbuf_puts(sb, "</h1><p>");
	web_html_escape(sb, text);
	strbuf_puts(sb, "</p>");
	if (token != NULL) {
		strbuf_puts(sb, "<form method=\"post\" action=\"/confirm?t=");
		web_html_escape(sb, token);
		strbuf_puts(sb, "\"><button type=\"submit\" "
		    "class=\"btn btn-primary\">");
		web_html_escape(sb, button);
		strbuf_puts(sb, "</button></form>");
	}
	strbuf_puts(sb, "</main></body></html>\n");
	rc = httpd_reply(req, status, "text/html; charset=utf-8", sb->buf,
	    sb->len);
	strbuf_free(sb);
	return rc;
}

/* lookup - the membership c names into *st; 0, or -1 on error. */
static int
lookup(const struct confirm *c, struct state *st)
{
	char id[24];
	PGresult *r;
	struct db *d;

	memset(st, 0, sizeof(*st));
	if ((d = db_get(daemon_db)) == NULL)
		return -1;
	snprintf(id, sizeof(id), "%lld", c->membership_id);
	r = db_query(d, "SELECT m.status, a.email, coalesce(nullif(g.title, "
	    "''), g.name) || ' (' || g.name || '@' || g.domain || ')', "
	    "g.name, g.domain FROM memberships m JOIN accounts a ON "
	    "a.id = m.account_id JOIN groups g ON g.id = m.group_id "
	    "WHERE m.id = $1::bigint AND g.status <> 'disabled'",
	    DB_PARAMS(id));
	db_put(daemon_db, d);
	if (r == NULL)
		return -1;
	if ((st->found = PQntuples(r) > 0)) {
		snprintf(st->status, sizeof(st->status), "%s",
		    PQgetvalue(r, 0, 0));
		snprintf(st->email, sizeof(st->email), "%s",
		    PQgetvalue(r, 0, 1));
		snprintf(st->group, sizeof(st->group), "%s",
		    PQgetvalue(r, 0, 2));
		snprintf(st->name, sizeof(st->name), "%s", PQgetvalue(r, 0, 3));
		snprintf(st->domain, sizeof(st->domain), "%s",
		    PQgetvalue(r, 0, 4));
	}
	PQclear(r);
	return 0;
}

/* pending - 1 if the action of c is still to be done on st. */
static int
pending(const struct confirm *c, const struct state *st)
{
	if (!st->found)
		return 0;
	return c->op == CONFIRM_UNSUBSCRIBE ||
	    strcmp(st->status, "pending_confirmation") == 0;
}

/* check - the request's token, verified, into *c and its membership into
 * *st; 0 when there is something to confirm, else 1 with the page
 * already answered (or -1 when answering failed). */
static int
check(struct httpd_req *req, struct confirm *c, struct state *st, int *rc)
{
	const char *t = httpd_req_query(req, "t");
	int v = confirm_check(t, time(NULL), c);

	if (v == CONFIRM_BAD) {
		*rc = page(req, 400, "Not a valid link", "This confirmation "
		    "link is damaged or not ours.", NULL, NULL);
		return 1;
	}
	if (lookup(c, st) == -1) {
		*rc = httpd_reply_error(req, 503, "database unavailable");
		return 1;
	}
	if (!pending(c, st)) {
		*rc = page(req, 200, "Nothing to confirm", "This link was "
		    "used already or is no longer valid; nothing changed.",
		    NULL, NULL);
		return 1;
	}
	if (v == CONFIRM_EXPIRED) {
		*rc = page(req, 200, "Link expired", "This confirmation link "
		    "has expired; nothing changed.  Send the command again "
		    "for a new one.", NULL, NULL);
		return 1;
	}
	return 0;
}

int
web_confirm_page(struct httpd_req *req)
{
	struct confirm c;
	struct state st;
	char *text;
	int rc;

	if (check(req, &c, &st, &rc) != 0)
		return rc;
	if (c.op == CONFIRM_SUBSCRIBE)
		text = xasprintf("Subscribe %s to %s?", st.email, st.group);
	else
		text = xasprintf("Remove %s from %s? You will get no more mail "
		    "from the group.", st.email, st.group);
	rc = page(req, 200, c.op == CONFIRM_SUBSCRIBE ? "Confirm subscription"
	    : "Confirm unsubscription", text, httpd_req_query(req, "t"),
	    c.op == CONFIRM_SUBSCRIBE ? "Subscribe" : "Unsubscribe");
	free(text);
	return rc;
}

/* hand_over - the confirmation, as the member's reply, to messageserver;
 * MS_OK or the client's failure. */
static int
hand_over(struct httpd_req *req, const struct state *st, const char *token)
{
	struct messageserver_clnt *mc;
	struct ms_envelope env;
	const char *rcpts[1];
	char *url, *rcpt, *raw, date[64], msgid[33], why[256];
	time_t now = time(NULL);
	struct tm tm;
	int rc;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	token_random_id(msgid, 16);
	rcpt = xasprintf("%s+confirm-%s@%s", st->name, token, st->domain);
	raw = xasprintf("From: <%s>\r\nTo: <%s>\r\nSubject: confirm\r\n"
	    "Date: %s\r\nMessage-ID: <%s.confirm@%s>\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
	    "Confirmed on the web.\r\n", st->email, rcpt, date, msgid,
	    st->domain);
	rcpts[0] = rcpt;
	memset(&env, 0, sizeof(env));
	env.mail_from = st->email;
	env.rcpts = rcpts;
	env.nrcpts = 1;
	env.client_addr = httpd_req_peer(req) ? httpd_req_peer(req) :
	    "127.0.0.1";
	env.client_helo = "web";
	env.cid = httpd_req_cid(req);
	url = config_url(&cfg, cfg.messageserver_port);
	mc = messageserver_clnt_new(url, daemon_api_secret,
	    CONFIRM_MS_TIMEOUT);
	rc = messageserver_clnt_inbound(mc, &env, raw, strlen(raw), why,
	    sizeof(why));
	if (rc != MS_OK)
		log_warnx("%s web: confirmation for %s not handed over: %s",
		    env.cid, st->email, rc == MS_REFUSED ? why : "try later");
	messageserver_clnt_free(mc);
	free(url);
	free(raw);
	free(rcpt);
	return rc;
}

int
web_confirm_post(struct httpd_req *req)
{
	struct confirm c;
	struct state st, after;
	char *text;
	int rc;

	if (check(req, &c, &st, &rc) != 0)
		return rc;
	rc = hand_over(req, &st, httpd_req_query(req, "t"));
	if (rc == MS_REFUSED || rc == MS_UNKNOWN || rc == MS_FOREIGN)
		return page(req, 200, "Nothing to confirm", "The group no "
		    "longer takes this confirmation; nothing changed.", NULL,
		    NULL);
	if (rc != MS_OK)
		return page(req, 503, "Please try again", "The confirmation "
		    "could not be recorded just now; nothing changed.  Please "
		    "try again in a few minutes.", NULL, NULL);
	if (lookup(&c, &after) == -1)
		return httpd_reply_error(req, 503, "database unavailable");
	if (c.op == CONFIRM_UNSUBSCRIBE && !after.found) {
		log_info("%s web: %s left %s (confirmed on the web)",
		    httpd_req_cid(req), st.email, st.group);
		text = xasprintf("%s is no longer a member of %s.", st.email,
		    st.group);
		rc = page(req, 200, "Unsubscribed", text, NULL, NULL);
	} else if (c.op == CONFIRM_SUBSCRIBE && after.found &&
	    strcmp(after.status, "active") == 0) {
		text = xasprintf("%s is now a member of %s.", st.email,
		    st.group);
		rc = page(req, 200, "Subscribed", text, NULL, NULL);
	} else if (c.op == CONFIRM_SUBSCRIBE && after.found &&
	    strcmp(after.status, "pending_approval") == 0) {
		text = xasprintf("Thank you: %s is confirmed.  The moderators "
		    "of %s approve new members; you will hear from them.",
		    st.email, st.group);
		rc = page(req, 200, "Waiting for approval", text, NULL, NULL);
	} else {
		text = xasprintf("The group did not take this confirmation "
		    "for %s; you will get an email saying why.", st.email);
		rc = page(req, 200, "Not confirmed", text, NULL, NULL);
	}
	free(text);
	return rc;
}
