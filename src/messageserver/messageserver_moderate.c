/* SPDX-License-Identifier: MIT */
/*
 * messageserver_moderate.c - moderators' replies: mail to
 * group+approve-TOKEN@domain or group+reject-TOKEN@domain decides a held
 * message or a join request.
 *
 * TOKEN is the signed token of the moderators' notice (messageserver_
 * notice.c, purpose "moderate"): payload "<pending id>" for a held
 * message, "m<membership id>" for a join request; it expires with the
 * item.  The decision is taken only when the token verifies, the reply's
 * From is an active owner or moderator of the group, the reply is no
 * automatic mail (an out-of-office answering the notice must not approve
 * anything), and the item still waits in that group.  The row is locked
 * (FOR UPDATE), so a replayed or concurrent approval finds it decided and
 * changes nothing: a message is released at most once.  An approved
 * message goes through messageserver_post_release (archive and fan-out,
 * as an accepted post); a rejected poster, an approved or rejected
 * member, and a moderator whose reply came too late get a short notice,
 * all queued in the outbox inside the caller's transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "db.h"
#include "log.h"
#include "messageserver.h"
#include "strbuf.h"
#include "xalloc.h"

#define MOD_NOTE_MAX	500	/* bytes of a moderator's reason kept */

/* The moderator who replied. */
struct moderator {
	char	id[24];			/* accounts.id */
	const char *email;		/* borrowed from the reply */
};

/* automatic - why the reply looks like a machine's, or NULL. */
static const char *
automatic(const struct ms_submission *s)
{
	const struct ms_parsed *p = s->p;
	const char *as = p->auto_submitted, *pr = p->precedence;

	if (s->mail_from[0] == '\0')
		return "null sender";
	while (as != NULL && (*as == ' ' || *as == '\t'))
		as++;
	while (pr != NULL && (*pr == ' ' || *pr == '\t'))
		pr++;
	if (p->autoreply || (as != NULL && *as != '\0' &&
	    strncasecmp(as, "no", 2) != 0))
		return "automatic reply";
	if (pr != NULL && (strncasecmp(pr, "junk", 4) == 0 ||
	    strncasecmp(pr, "bulk", 4) == 0 ||
	    strncasecmp(pr, "list", 4) == 0 ||
	    strncasecmp(pr, "auto_reply", 10) == 0))
		return "bulk or automatic mail (Precedence)";
	return NULL;
}

/* moderator_load - 1 if from is an active owner or moderator of g (id
 * into m), 0 if not, -1 on error. */
static int
moderator_load(struct db *d, const struct ms_group *g, const char *from,
    struct moderator *m)
{
	m->email = from;
	return db_query_value(d, "SELECT a.id FROM memberships m JOIN "
	    "accounts a ON a.id = m.account_id WHERE m.group_id = $1 AND "
	    "lower(a.email) = lower($2) AND m.role IN ('owner', 'moderator') "
	    "AND m.status = 'active' AND a.status = 'active'",
	    DB_PARAMS(g->id, from), m->id, sizeof(m->id));
}

/* note - the moderator's reason: the first non-blank line of the reply
 * unless it is quoted text, at most MOD_NOTE_MAX bytes on a character
 * boundary, into out ("" when there is none). */
static void
note(const char *body, char *out, size_t len)
{
	const char *e;
	size_t n;

	out[0] = '\0';
	while (*body == ' ' || *body == '\t' || *body == '\r' ||
	    *body == '\n')
		body++;
	if (*body == '>' || *body == '\0')
		return;
	for (e = body; *e != '\0' && *e != '\n' && *e != '\r'; e++)
		;
	while (e > body && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	n = (size_t)(e - body);
	if (n > MOD_NOTE_MAX)
		n = MOD_NOTE_MAX;
	if (n >= len)
		n = len - 1;
	/* do not cut a UTF-8 sequence */
	while (n > 0 && ((unsigned char)body[n] & 0xc0) == 0x80)
		n--;
	memcpy(out, body, n);
	out[n] = '\0';
}

/* log_decision - an activity_log row for the decision. */
static int
log_decision(struct db *d, const struct ms_group *g,
    const struct moderator *m, const char *action, const char *what,
    const char *id)
{
	return db_exec(d, "INSERT INTO activity_log (group_id, actor_id, "
	    "action, details) VALUES ($1, $2, $3, jsonb_build_object($4::text, "
	    "$5::bigint, 'via', 'email'))",
	    DB_PARAMS(g->id, m->id, action, what, id)) == -1 ? -1 : 0;
}

/* tell_late - tell a moderator the item was decided already. */
static int
tell_late(struct db *d, const struct ms_group *g, const struct moderator *m,
    const struct ms_submission *s, const char *what)
{
	char *subject, *text;
	int rc;

	subject = xasprintf("%s: nothing to do", g->name);
	text = xasprintf("Your reply to %s@%s changed nothing: %s.\n",
	    g->name, g->domain, what);
	rc = messageserver_notice_text(d, g, m->email, subject, text,
	    s->p->message_id);
	free(text);
	free(subject);
	return rc;
}

/* release - parse the held bytes again and post them; 0 with *res, or
 * -1 (a database error; a parse failure is 1). */
static int
release(struct db *d, const struct ms_group *g, const struct ms_submission *s,
    const unsigned char *raw, size_t rawlen, const char *envelope,
    const char *source, struct ms_result *res)
{
	struct ms_submission sub;
	struct ms_parsed p;
	int rc;

	if (messageserver_mime_parse(raw, rawlen, envelope,
	    cfg.domain ? cfg.domain : "localhost", &p) == -1)
		return 1;
	memset(&sub, 0, sizeof(sub));
	sub.source = source;
	sub.mail_from = envelope;
	sub.raw = raw;
	sub.rawlen = rawlen;
	sub.p = &p;
	sub.cid = s->cid;
	rc = messageserver_post_release(d, g, &sub, res);
	messageserver_mime_free(&p);
	return rc;
}

/* approve_message - release pending row r (locked) to the group. */
static int
approve_message(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, const struct moderator *m,
    const char *pid, PGresult *r, struct ms_action *a)
{
	struct ms_result res;
	unsigned char *raw;
	char num[32];
	size_t rawlen;
	int rc;

	raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1),
	    &rawlen);
	if (raw == NULL) {
		log_warnx("%s messageserver: held message %s of %s@%s: raw "
		    "bytes unreadable", s->cid, pid, g->name, g->domain);
		return -1;
	}
	rc = release(d, g, s, raw, rawlen, PQgetvalue(r, 0, 2),
	    PQgetvalue(r, 0, 3), &res);
	PQfreemem(raw);
	if (rc == 1) {
		log_warnx("%s messageserver: held message %s of %s@%s no "
		    "longer parses; left pending", s->cid, pid, g->name,
		    g->domain);
		a->status = "ignored";
		snprintf(a->reason, sizeof(a->reason), "held message %s does "
		    "not parse", pid);
		return 0;
	}
	if (rc == -1)
		return -1;
	snprintf(num, sizeof(num), "%lld", res.number);
	if (db_exec(d, "UPDATE pending_messages SET status = 'approved', "
	    "decided_by = $2, decided_at = now(), result_message_id = "
	    "(SELECT id FROM messages WHERE group_id = $3 AND number = $4) "
	    "WHERE id = $1", DB_PARAMS(pid, m->id, g->id, num)) == -1 ||
	    db_exec(d, "UPDATE messages SET approved_by = $2 WHERE "
	    "group_id = $1 AND number = $3 AND approved_by IS NULL",
	    DB_PARAMS(g->id, m->id, num)) == -1)
		return -1;
	/* an approved post counts towards lifting new-member moderation */
	if (db_exec(d, "UPDATE memberships m SET approved_posts = "
	    "approved_posts + 1, posting = CASE WHEN posting = "
	    "'new_member_moderated' AND approved_posts + 1 >= "
	    "g.new_member_posts THEN 'unmoderated' ELSE posting END "
	    "FROM groups g WHERE g.id = m.group_id AND m.group_id = $1 AND "
	    "m.account_id = nullif($2, '')::bigint",
	    DB_PARAMS(g->id, PQgetvalue(r, 0, 5))) == -1 ||
	    log_decision(d, g, m, "message.approved", "pending_id", pid) == -1)
		return -1;
	a->status = "done";
	if (strcmp(res.status, "duplicate") == 0)
		snprintf(a->reason, sizeof(a->reason), "approved held message "
		    "%s, already archived as #%lld", pid, res.number);
	else
		snprintf(a->reason, sizeof(a->reason), "approved held message "
		    "%s: #%lld", pid, res.number);
	return 0;
}

/* reject_message - mark pending row r (locked) rejected, tell the
 * poster. */
static int
reject_message(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, const struct moderator *m,
    const char *pid, PGresult *r, struct ms_action *a)
{
	char why[MOD_NOTE_MAX + 1], *subject;
	struct strbuf *text;
	int rc;

	note(s->p->body_text, why, sizeof(why));
	if (db_exec(d, "UPDATE pending_messages SET status = 'rejected', "
	    "decided_by = $2, decided_at = now(), decision_note = $3 "
	    "WHERE id = $1", DB_PARAMS(pid, m->id, why)) == -1 ||
	    log_decision(d, g, m, "message.rejected", "pending_id", pid) == -1)
		return -1;
	text = strbuf_new(1024);
	strbuf_appendf(text, "Your message to %s@%s was not approved by the "
	    "group's moderators.\n\nSubject: %s\n", g->name, g->domain,
	    PQgetvalue(r, 0, 6));
	if (why[0] != '\0')
		strbuf_appendf(text, "Reason: %s\n", why);
	strbuf_appendf(text, "\nThe group's owners: %s+owner@%s\n", g->name,
	    g->domain);
	subject = xasprintf("Not posted to %s: %s", g->name,
	    PQgetvalue(r, 0, 6));
	rc = messageserver_notice_text(d, g, PQgetvalue(r, 0, 4), subject,
	    text->buf, PQgetisnull(r, 0, 7) ? NULL : PQgetvalue(r, 0, 7));
	free(subject);
	strbuf_free(text);
	if (rc == -1)
		return -1;
	a->status = "done";
	snprintf(a->reason, sizeof(a->reason), "rejected held message %s",
	    pid);
	return 0;
}

/* decide_message - approve or reject held message pid of g. */
static int
decide_message(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, const struct moderator *m, int approve,
    const char *pid, struct ms_action *a)
{
	char late[128];
	PGresult *r;
	int rc;

	r = db_query(d, "SELECT status, raw, coalesce(envelope_from, ''), "
	    "source, from_address, coalesce(account_id::text, ''), subject, "
	    "message_id, expires_at IS NOT NULL AND expires_at <= now() "
	    "FROM pending_messages WHERE id = $1 AND group_id = $2 "
	    "FOR UPDATE", DB_PARAMS(pid, g->id));
	if (r == NULL)
		return -1;
	a->status = "ignored";
	if (PQntuples(r) == 0) {
		snprintf(a->reason, sizeof(a->reason), "no held message %s in "
		    "this group", pid);
		PQclear(r);
		return 0;
	}
	if (strcmp(PQgetvalue(r, 0, 0), "pending") != 0 ||
	    PQgetvalue(r, 0, 8)[0] == 't') {
		snprintf(late, sizeof(late), "the message \"%.60s\" was %s "
		    "already", PQgetvalue(r, 0, 6), PQgetvalue(r, 0, 8)[0] ==
		    't' ? "expired" : PQgetvalue(r, 0, 0));
		snprintf(a->reason, sizeof(a->reason), "held message %s is %s",
		    pid, PQgetvalue(r, 0, 8)[0] == 't' ? "expired" :
		    PQgetvalue(r, 0, 0));
		PQclear(r);
		return tell_late(d, g, m, s, late);
	}
	rc = approve ? approve_message(d, g, s, m, pid, r, a) :
	    reject_message(d, g, s, m, pid, r, a);
	PQclear(r);
	return rc;
}

/* decide_member - approve or reject join request mid of g. */
static int
decide_member(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, const struct moderator *m, int approve,
    const char *mid, struct ms_action *a)
{
	char email[MS_ADDR_MAX + 1], *subject, *text;
	PGresult *r;
	int rc;

	r = db_query(d, "SELECT m.status, a.email FROM memberships m JOIN "
	    "accounts a ON a.id = m.account_id WHERE m.id = $1 AND "
	    "m.group_id = $2 FOR UPDATE OF m", DB_PARAMS(mid, g->id));
	if (r == NULL)
		return -1;
	a->status = "ignored";
	if (PQntuples(r) == 0 ||
	    strcmp(PQgetvalue(r, 0, 0), "pending_approval") != 0) {
		rc = PQntuples(r) == 0 ? 0 : strcmp(PQgetvalue(r, 0, 0),
		    "active") == 0 ? 1 : 2;
		PQclear(r);
		snprintf(a->reason, sizeof(a->reason), "membership %s %s", mid,
		    rc == 0 ? "is gone (rejected or withdrawn)" : rc == 1 ?
		    "is active already" : "is not awaiting approval");
		return tell_late(d, g, m, s, rc == 0 ? "the join request "
		    "was rejected or withdrawn already" : rc == 1 ?
		    "the member was approved already" :
		    "the join request is not awaiting approval");
	}
	strlcpy_chk(email, PQgetvalue(r, 0, 1), sizeof(email));
	PQclear(r);
	if (approve) {
		if (db_exec(d, "UPDATE memberships SET status = 'active', "
		    "approved_by = $2, approved_at = now() WHERE id = $1",
		    DB_PARAMS(mid, m->id)) == -1)
			return -1;
		subject = xasprintf("Welcome to %s", g->name);
		text = xasprintf("Your request to join %s@%s was approved: "
		    "you are a member now.\n\nTo post, write to %s@%s.\n"
		    "To leave, write to %s+unsubscribe@%s.\n", g->name,
		    g->domain, g->name, g->domain, g->name, g->domain);
	} else {
		char why[MOD_NOTE_MAX + 1];

		if (db_exec(d, "DELETE FROM memberships WHERE id = $1",
		    DB_PARAMS(mid)) == -1)
			return -1;
		note(s->p->body_text, why, sizeof(why));
		subject = xasprintf("Your request to join %s", g->name);
		text = xasprintf("Your request to join %s@%s was declined "
		    "by the group's moderators.\n%s%s%s\nThe group's owners: "
		    "%s+owner@%s\n", g->name, g->domain, why[0] ? "Reason: " :
		    "", why, why[0] ? "\n" : "", g->name, g->domain);
	}
	rc = log_decision(d, g, m, approve ? "member.approved" :
	    "member.rejected", "membership_id", mid);
	if (rc == 0)
		rc = messageserver_notice_text(d, g, email, subject, text,
		    NULL);
	free(subject);
	free(text);
	if (rc == -1)
		return -1;
	a->status = "done";
	snprintf(a->reason, sizeof(a->reason), "%s member %.200s (%s)",
	    approve ? "approved" : "rejected", email, mid);
	return 0;
}

/* digits - 1 if s is a non-empty run of at most 18 decimal digits. */
static int
digits(const char *s)
{
	size_t n = strspn(s, "0123456789");

	return n > 0 && n <= 18 && s[n] == '\0';
}

int
messageserver_moderate(struct db *d, const struct ms_route *r,
    const struct ms_submission *s, struct ms_action *a)
{
	struct ms_group g;
	struct moderator m;
	const char *why;
	char *payload;
	int approve = strcmp(r->command, "approve") == 0, expired, rc;

	a->status = "ignored";
	if ((why = automatic(s)) != NULL) {
		snprintf(a->reason, sizeof(a->reason), "%s", why);
		return 0;
	}
	if ((payload = messageserver_moderation_verify(r->detail,
	    &expired)) == NULL) {
		snprintf(a->reason, sizeof(a->reason), "%s token",
		    expired ? "expired" : "bad");
		return 0;
	}
	if ((rc = messageserver_group_load(d, r->domain, r->group, &g)) != 1) {
		free(payload);
		snprintf(a->reason, sizeof(a->reason), "no such group");
		return rc == -1 ? -1 : 0;
	}
	if ((rc = moderator_load(d, &g, s->p->from_addr, &m)) != 1) {
		free(payload);
		snprintf(a->reason, sizeof(a->reason), "%s is not a moderator "
		    "of the group", s->p->from_addr);
		return rc == -1 ? -1 : 0;
	}
	if (payload[0] == 'm' && digits(payload + 1))
		rc = decide_member(d, &g, s, &m, approve, payload + 1, a);
	else if (digits(payload))
		rc = decide_message(d, &g, s, &m, approve, payload, a);
	else {
		snprintf(a->reason, sizeof(a->reason), "token names nothing "
		    "we know");
		rc = 0;
	}
	if (rc == 0 && strcmp(a->status, "done") == 0)
		log_info("%s messageserver: %s@%s: %s by %s", s->cid, g.name,
		    g.domain, a->reason, m.email);
	free(payload);
	return rc;
}
