/* SPDX-License-Identifier: MIT */
/*
 * messageserver_posts.c - POST /v1/posts: a post from the web or a
 * crawler, given as fields.
 *
 *	{"group": name, "domain": d (default: cfg.domain), "from": addr,
 *	 "from_name": n, "subject": s, "text": body, "html": h,
 *	 "in_reply_to": msgid, "message_id": msgid, "source": "web"|"feed"|
 *	 "system", "special": bool}		group, from, subject, text
 *						and source are required
 *	200 {"status": ..., "messages": [{group, status, number, ...}]}
 *	404 no such group; 400 malformed; 503 try again
 *
 * The fields become an RFC 5322 message (messageserver_compose.c), which
 * is then parsed and posted exactly like mail from smtpd: one pipeline,
 * one set of rules.  The caller (web) has authenticated the poster; a
 * message_id makes retries safe (a crawler passes one derived from the
 * feed item).
 */
#include <string.h>

#include "api_proto.h"
#include "config.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "messageserver.h"
#include "xalloc.h"

#define POST_TEXT_MAX	(4 * 1024 * 1024)

/* valid_source - posts from email come through /v1/inbound only. */
static int
valid_source(const char *s)
{
	return strcmp(s, "web") == 0 || strcmp(s, "feed") == 0 ||
	    strcmp(s, "system") == 0;
}

int
messageserver_posts_handler(struct httpd_req *req)
{
	const char *group, *domain = NULL, *from, *from_name = "", *subject;
	const char *text, *html = NULL, *irt = NULL, *msgid = NULL, *source;
	const char *to[1];
	int special = 0, rc, found = 0;
	struct ms_compose c;
	struct ms_submission sub;
	struct ms_parsed p;
	struct ms_group g;
	struct ms_result res;
	char *raw, *addr;
	size_t rawlen;
	struct db *d;
	json_t *msgs;

	if (httpd_json_unpack(req, "{s:s, s?s, s:s, s?s, s:s, s:s, s?s, "
	    "s?s, s?s, s:s, s?b !}", F_MS_GROUP, &group, F_MS_DOMAIN, &domain,
	    F_MS_FROM, &from, F_MS_FROM_NAME, &from_name, F_MS_SUBJECT,
	    &subject, F_MS_TEXT, &text, F_MS_HTML, &html, F_MS_IN_REPLY_TO,
	    &irt, F_MS_MESSAGE_ID, &msgid, F_MS_SOURCE, &source,
	    F_MS_SPECIAL, &special) == -1)
		return 0;
	if (domain == NULL)
		domain = cfg.domain;
	if (!valid_source(source))
		return httpd_reply_error(req, 400, "%s must be web, feed or "
		    "system", F_MS_SOURCE);
	if (strlen(from) > MS_ADDR_MAX || strchr(from, '@') == NULL ||
	    strlen(group) > MS_ADDR_MAX || strlen(domain) > MS_ADDR_MAX)
		return httpd_reply_error(req, 400, "bad address");
	if (strlen(subject) > MS_SUBJECT_MAX ||
	    strlen(from_name) > MS_NAME_MAX ||
	    (msgid != NULL && (msgid[0] == '\0' ||
	    strlen(msgid) > MS_MSGID_MAX)) ||
	    (irt != NULL && strlen(irt) > MS_MSGID_MAX))
		return httpd_reply_error(req, 400, "field too long");
	if (strlen(text) > POST_TEXT_MAX ||
	    (html != NULL && strlen(html) > POST_TEXT_MAX))
		return httpd_reply_error(req, 413, "text too long");

	addr = xasprintf("%s@%s", group, domain);
	to[0] = addr;
	memset(&c, 0, sizeof(c));
	c.from_name = from_name;
	c.from_addr = from;
	c.to = to;
	c.nto = 1;
	c.subject = subject;
	c.text = text;
	c.html = html;
	c.message_id = msgid;
	c.msgid_domain = domain;
	c.in_reply_to = irt;
	raw = messageserver_compose(&c, &rawlen);
	free(addr);
	if (messageserver_mime_parse(raw, rawlen, from, domain, &p) == -1) {
		free(raw);
		return httpd_reply_error(req, 400, "fields do not make a "
		    "message");
	}
	memset(&sub, 0, sizeof(sub));
	sub.source = source;
	sub.mail_from = from;
	sub.raw = (const unsigned char *)raw;
	sub.rawlen = rawlen;
	sub.p = &p;
	sub.special = special;
	sub.cid = httpd_req_cid(req);

	if ((d = db_get(daemon_db)) == NULL) {
		rc = -1;
		goto out;
	}
	found = 0;
	if ((rc = db_begin(d)) == 0 && (rc = found =
	    messageserver_group_load(d, domain, group, &g)) == 1 &&
	    (rc = messageserver_post_group(d, &g, &sub, &res)) == 0)
		rc = db_commit(d);
	if (rc != 0 || found != 1)
		db_rollback(d);
	db_put(daemon_db, d);
out:
	messageserver_mime_free(&p);
	free(raw);
	if (rc == 0 && found == 0)
		return httpd_reply_error(req, 404, "no such group");
	if (rc != 0)
		return httpd_reply_error(req, 503, "database failure; "
		    "not stored, try again later");
	messageserver_fanout_kick();
	msgs = json_array();
	json_array_append_new(msgs, messageserver_result_json(&g, &res));
	messageserver_count(msgs);
	return httpd_reply_json(req, 200, json_pack("{s:s, s:o}",
	    F_MS_STATUS, messageserver_overall(msgs, 0), F_MS_MESSAGES,
	    msgs));
}
