/* SPDX-License-Identifier: MIT */
/*
 * messageserver_notice.c - the notices the posting path sends: a rejected
 * poster is told why; a group's moderators are told a message waits, with
 * reply addresses that approve or reject it.
 *
 * Notices are composed here and queued in the outbox inside the caller's
 * transaction, so they leave exactly when the decision is committed.
 * They come from group+owner@domain with Auto-Submitted: auto-replied
 * (RFC 3834), so well-behaved responders do not answer them.  The
 * moderation token is a short HMAC-signed token (token.h, purpose
 * "moderate") over the held message's id ("<pending id>") or the pending
 * membership's ("m<membership id>") and the last day it is valid (the
 * item's expiry); messageserver_moderate.c verifies it.  Moderators'
 * decisions are answered here too (messageserver_notice_text), and
 * forwards are queued through messageserver_notice_raw.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "messageserver.h"
#include "strbuf.h"
#include "token.h"
#include "xalloc.h"

#define NOTICE_QUOTE_MAX	2000	/* bytes of the post quoted */
#define NOTICE_REJECT_EVERY	"1 hour"	/* per poster and group */
#define NOTICE_STAFF_MAX_S	"100"	/* owners and moderators told */

/* moderation_key - the key of moderation tokens, derived from the
 * system secret. */
static void
moderation_key(unsigned char key[TOKEN_KEY_LEN])
{
	token_derive(cfg.secret ? cfg.secret : "",
	    cfg.secret ? strlen(cfg.secret) : 0, "moderate", key);
}

/* moderation_sign - a moderation token naming item (a pending id, or
 * "m<membership id>"), valid for days days (allocated).  A short token
 * (token_short_sign): "<item>.<last day>.<mac>", the last day it is valid
 * counted in days since 1970.  token_sign's long form would make the
 * reply address's local part longer than the 64 octets RFC 5321 allows,
 * which our smtpd and many others refuse; the short MAC also survives a
 * mail system that changes the case of the local part. */
static char *
moderation_sign(const char *item, int days)
{
	unsigned char key[TOKEN_KEY_LEN];
	char payload[TOKEN_SHORT_PAYLOAD_MAX + 1];
	long long last = ((long long)time(NULL) + (long long)days * 86400) /
	    86400;

	moderation_key(key);
	if (snprintf(payload, sizeof(payload), "%s.%lld", item, last) >=
	    (int)sizeof(payload))
		panic("moderation token payload %s too long", item);
	return token_short_sign(key, "moderate", payload);
}

char *
messageserver_moderation_verify(const char *token, int *expired)
{
	unsigned char key[TOKEN_KEY_LEN];
	char payload[TOKEN_SHORT_PAYLOAD_MAX + 1], *dot, *end;
	long long last;

	*expired = 0;
	moderation_key(key);
	if (token_short_verify(key, "moderate", token, payload,
	    sizeof(payload)) != TOKEN_OK ||
	    (dot = strrchr(payload, '.')) == NULL || dot == payload)
		return NULL;
	*dot = '\0';
	last = strtoll(dot + 1, &end, 10);
	if (*end != '\0' || end == dot + 1)
		return NULL;
	if ((long long)time(NULL) / 86400 > last) {
		*expired = 1;
		return NULL;
	}
	return xstrdup(payload);
}

char *
messageserver_moderation_token(long long pending_id, int days)
{
	char payload[32];

	snprintf(payload, sizeof(payload), "%lld", pending_id);
	return moderation_sign(payload, days);
}

/* queue - put a composed notice for receivers (a JSON array of
 * {"to": ...}) in the outbox. */
static int
queue(struct db *d, const struct ms_group *g, const char *raw, size_t len,
    json_t *receivers)
{
	char *hex = messageserver_bytea_hex(raw, len);
	char *js = json_dumps(receivers, JSON_COMPACT);
	long rc;

	rc = db_exec(d, "INSERT INTO outbox (kind, group_id, raw, receivers) "
	    "VALUES ('notice', $1, $2::bytea, $3::jsonb)",
	    DB_PARAMS(g->id, hex, js));
	free(hex);
	free(js);
	return rc == -1 ? -1 : 0;
}

int
messageserver_notice_raw(struct db *d, const struct ms_group *g,
    const char *raw, size_t len, json_t *receivers)
{
	return queue(d, g, raw, len, receivers);
}

int
messageserver_own_address(struct db *d, const char *addr)
{
	const char *at = strrchr(addr, '@');

	if (at == NULL)
		return 0;
	if (cfg.domain != NULL && strcasecmp(at + 1, cfg.domain) == 0)
		return 1;
	return db_query_value(d, "SELECT 1 FROM domains WHERE name = "
	    "lower($1)", DB_PARAMS(at + 1), NULL, 0);
}

int
messageserver_notice_text(struct db *d, const struct ms_group *g,
    const char *to, const char *subject, const char *text,
    const char *in_reply_to)
{
	struct ms_header hdr[] = { { "Auto-Submitted", "auto-replied" } };
	const char *tov[1] = { to };
	struct ms_compose c;
	char *from, *raw;
	size_t len;
	json_t *rcv;
	int rc;

	if (strchr(to, '@') == NULL)
		return 0;
	if ((rc = messageserver_own_address(d, to)) != 0) {
		if (rc == 1)
			log_warnx("messageserver: no notice to our own address "
			    "%s (%s)", to, subject);
		return rc == 1 ? 0 : -1;
	}
	from = xasprintf("%s+owner@%s", g->name, g->domain);
	memset(&c, 0, sizeof(c));
	c.from_name = g->title[0] ? g->title : g->name;
	c.from_addr = from;
	c.to = tov;
	c.nto = 1;
	c.subject = subject;
	c.text = text;
	c.msgid_domain = g->domain;
	c.in_reply_to = in_reply_to;
	c.headers = hdr;
	c.nheaders = 1;
	raw = messageserver_compose(&c, &len);
	rcv = json_pack("[{s:s}]", "to", to);
	rc = queue(d, g, raw, len, rcv);
	json_decref(rcv);
	free(raw);
	free(from);
	return rc;
}

/* moderators - the addresses of g's active owners and moderators (at
 * most NOTICE_STAFF_MAX); the caller PQclears, NULL on a database error. */
static PGresult *
moderators(struct db *d, const struct ms_group *g)
{
	return db_query(d, "SELECT a.email FROM memberships m JOIN accounts a "
	    "ON a.id = m.account_id WHERE m.group_id = $1 "
	    "AND m.role IN ('owner', 'moderator') AND m.status = 'active' "
	    "AND a.status = 'active' ORDER BY m.id LIMIT "
	    NOTICE_STAFF_MAX_S, DB_PARAMS(g->id));
}

/* quote - the start of the post's text, each line after "> ". */
static void
quote(struct strbuf *sb, const char *text)
{
	size_t n = 0;

	strbuf_puts(sb, "> ");
	for (; *text != '\0' && n < NOTICE_QUOTE_MAX; text++, n++) {
		strbuf_putc(sb, *text);
		if (*text == '\n' && text[1] != '\0')
			strbuf_puts(sb, "> ");
	}
	if (*text != '\0')
		strbuf_puts(sb, "\n> [...]");
	strbuf_putc(sb, '\n');
}

int
messageserver_notice_reject(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, const char *why)
{
	const struct ms_parsed *p = s->p;
	const char *to[1] = { p->from_addr };
	struct ms_header hdr[] = { { "Auto-Submitted", "auto-replied" } };
	struct ms_compose c;
	struct strbuf *body = strbuf_new(4096);
	char *from, *subject, *raw;
	size_t len;
	json_t *rcv;
	int rc;

	if (strchr(p->from_addr, '@') == NULL) {
		strbuf_free(body);
		return 0;	/* nobody to tell */
	}
	/* one notice per poster and group an hour: a forged sender or a
	 * misconfigured machine cannot turn us into a mail cannon */
	rcv = json_pack("[{s:s}]", "to", p->from_addr);
	raw = json_dumps(rcv, JSON_COMPACT);
	json_decref(rcv);
	rc = db_query_value(d, "SELECT 1 FROM outbox WHERE group_id = $1 AND "
	    "kind = 'notice' AND receivers @> $2::jsonb AND created_at > "
	    "now() - interval '" NOTICE_REJECT_EVERY "' LIMIT 1",
	    DB_PARAMS(g->id, raw), NULL, 0);
	free(raw);
	if (rc != 0) {
		strbuf_free(body);
		if (rc == 1)
			log_info("messageserver: %s was told about %s@%s "
			    "recently; no new notice", p->from_addr, g->name,
			    g->domain);
		return rc == 1 ? 0 : -1;
	}
	strbuf_appendf(body, "Your message to %s@%s was not posted:\n%s.\n\n"
	    "Subject: %s\n\n", g->name, g->domain, why, p->subject);
	if (cfg.public_url != NULL)
		strbuf_appendf(body, "About the group: %s/g/%s\n\n",
		    cfg.public_url, g->name);
	strbuf_appendf(body, "The group's owners: %s+owner@%s\n\n", g->name,
	    g->domain);
	quote(body, p->body_text);

	from = xasprintf("%s+owner@%s", g->name, g->domain);
	subject = xasprintf("Not posted to %s: %s", g->name, p->subject);
	memset(&c, 0, sizeof(c));
	c.from_name = g->title[0] ? g->title : g->name;
	c.from_addr = from;
	c.to = to;
	c.nto = 1;
	c.subject = subject;
	c.text = body->buf;
	c.msgid_domain = g->domain;
	c.in_reply_to = p->message_id;
	c.headers = hdr;
	c.nheaders = 1;
	raw = messageserver_compose(&c, &len);
	rcv = json_pack("[{s:s}]", "to", p->from_addr);
	rc = queue(d, g, raw, len, rcv);
	json_decref(rcv);
	free(raw);
	free(subject);
	free(from);
	strbuf_free(body);
	return rc;
}

int
messageserver_notice_held(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, long long pending_id, const char *why)
{
	const struct ms_parsed *p = s->p;
	struct ms_header hdr[] = { { "Auto-Submitted", "auto-generated" } };
	struct ms_compose c;
	struct strbuf *body;
	char *token, *approve, *reject, *from, *subject, *raw;
	const char **to;
	size_t len, i, n;
	json_t *rcv;
	PGresult *r;
	int rc;

	if ((r = moderators(d, g)) == NULL)
		return -1;
	if ((n = (size_t)PQntuples(r)) == 0) {
		log_warnx("messageserver: group %s@%s holds message %lld "
		    "but has no moderators to tell", g->name, g->domain,
		    pending_id);
		PQclear(r);
		return 0;
	}
	token = messageserver_moderation_token(pending_id,
	    g->pending_expiry_days);
	approve = xasprintf("%s+approve-%s@%s", g->name, token, g->domain);
	reject = xasprintf("%s+reject-%s@%s", g->name, token, g->domain);
	body = strbuf_new(4096);
	strbuf_appendf(body, "A message to %s@%s is waiting for approval: "
	    "%s.\n\nFrom: %s %s\nSubject: %s\n\n"
	    "To approve it, reply to this message (the reply goes to %s).\n"
	    "To reject it, send a message to %s\n", g->name, g->domain, why,
	    p->from_name, p->from_addr, p->subject, approve, reject);
	if (cfg.public_url != NULL)
		strbuf_appendf(body, "Or decide on the web: %s/g/%s/pending\n",
		    cfg.public_url, g->name);
	strbuf_appendf(body, "\nIt expires in %d days.\n\n",
	    g->pending_expiry_days);
	quote(body, p->body_text);

	to = xreallocarray(NULL, n, sizeof(*to));
	rcv = json_array();
	for (i = 0; i < n; i++) {
		to[i] = PQgetvalue(r, (int)i, 0);
		json_array_append_new(rcv, json_pack("{s:s}", "to", to[i]));
	}
	from = xasprintf("%s+owner@%s", g->name, g->domain);
	subject = xasprintf("%s: message held for approval: %s", g->name,
	    p->subject);
	memset(&c, 0, sizeof(c));
	c.from_name = g->title[0] ? g->title : g->name;
	c.from_addr = from;
	c.to = to;
	c.nto = n;
	c.reply_to = approve;
	c.subject = subject;
	c.text = body->buf;
	c.msgid_domain = g->domain;
	c.headers = hdr;
	c.nheaders = 1;
	raw = messageserver_compose(&c, &len);
	rc = queue(d, g, raw, len, rcv);
	json_decref(rcv);
	free(raw);
	free(subject);
	free(from);
	free(to);
	PQclear(r);
	strbuf_free(body);
	free(approve);
	free(reject);
	free(token);
	return rc;
}

int
messageserver_notice_member_pending(struct db *d, const struct ms_group *g,
    long long membership_id, const char *email, const char *name,
    const char *answer)
{
	struct ms_header hdr[] = { { "Auto-Submitted", "auto-generated" } };
	struct ms_compose c;
	struct strbuf *body;
	char payload[32], *token, *approve, *reject, *from, *subject, *raw;
	const char **to;
	size_t len, i, n;
	json_t *rcv;
	PGresult *r;
	int rc;

	if ((r = moderators(d, g)) == NULL)
		return -1;
	if ((n = (size_t)PQntuples(r)) == 0) {
		log_warnx("messageserver: %s asks to join %s@%s (membership "
		    "%lld) but the group has no moderators to tell", email,
		    g->name, g->domain, membership_id);
		PQclear(r);
		return 0;
	}
	snprintf(payload, sizeof(payload), "m%lld", membership_id);
	token = moderation_sign(payload, g->pending_expiry_days);
	approve = xasprintf("%s+approve-%s@%s", g->name, token, g->domain);
	reject = xasprintf("%s+reject-%s@%s", g->name, token, g->domain);
	body = strbuf_new(2048);
	strbuf_appendf(body, "%s%s<%s> asks to join %s@%s.\n\n",
	    name != NULL ? name : "", name != NULL && name[0] != '\0' ?
	    " " : "", email, g->name, g->domain);
	if (answer != NULL && answer[0] != '\0') {
		strbuf_puts(body, "Their answer to the join question:\n");
		quote(body, answer);
		strbuf_putc(body, '\n');
	}
	strbuf_appendf(body, "To approve, reply to this message (the reply "
	    "goes to %s).\nTo reject, send a message to %s\n", approve,
	    reject);
	if (cfg.public_url != NULL)
		strbuf_appendf(body, "Or decide on the web: %s/g/%s/pending\n",
		    cfg.public_url, g->name);
	strbuf_appendf(body, "\nThese addresses work for %d days.\n",
	    g->pending_expiry_days);

	to = xreallocarray(NULL, n, sizeof(*to));
	rcv = json_array();
	for (i = 0; i < n; i++) {
		to[i] = PQgetvalue(r, (int)i, 0);
		json_array_append_new(rcv, json_pack("{s:s}", "to", to[i]));
	}
	from = xasprintf("%s+owner@%s", g->name, g->domain);
	subject = xasprintf("%s: %s asks to join", g->name, email);
	memset(&c, 0, sizeof(c));
	c.from_name = g->title[0] ? g->title : g->name;
	c.from_addr = from;
	c.to = to;
	c.nto = n;
	c.reply_to = approve;
	c.subject = subject;
	c.text = body->buf;
	c.msgid_domain = g->domain;
	c.headers = hdr;
	c.nheaders = 1;
	raw = messageserver_compose(&c, &len);
	rc = queue(d, g, raw, len, rcv);
	json_decref(rcv);
	free(raw);
	free(subject);
	free(from);
	free(to);
	PQclear(r);
	strbuf_free(body);
	free(approve);
	free(reject);
	free(token);
	return rc;
}
