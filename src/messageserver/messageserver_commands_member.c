/* SPDX-License-Identifier: MIT */
/*
 * messageserver_commands_member.c - joining and leaving by email:
 * group+subscribe, group+unsubscribe, group+confirm-TOKEN and
 * group+unsubscribe-TOKEN.
 *
 * Both subscribe and unsubscribe are double opt-in: the command only sends
 * a confirmation request to the From address, whose reply address
 * (group+confirm-TOKEN@domain) or web link (/confirm?t=TOKEN) carries a
 * signed token (confirm.h) naming the membership and the action.  So a
 * forged From can neither subscribe nor remove anyone; it can only make
 * us send them a request, which the hourly reply limit bounds.
 * Subscribing makes the account (status pending until it confirms) and a
 * pending_confirmation membership; confirming makes it active, or
 * pending_approval when the group restricts membership, and then the
 * moderators are told.  The token in a member's footer
 * (group+unsubscribe-TOKEN, purpose "unsubscribe") removes at once.  A
 * token that is forged, spent or meant for another group does nothing and
 * gets no answer; an expired one gets a short one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmdaddr.h"
#include "config.h"
#include "confirm.h"
#include "db.h"
#include "log.h"
#include "messageserver.h"
#include "strbuf.h"
#include "token.h"
#include "xalloc.h"

#define ANSWER_MAX	1000	/* bytes of a join answer kept */
#define EMAIL_MAX	254	/* accounts_email_check */

/* A membership as the commands need it (strings from PostgreSQL). */
struct member {
	char	account[24];
	char	astatus[16];
	char	id[24];		/* "" when not a member */
	char	status[24];
	char	role[16];
	char	email[EMAIL_MAX + 1];
	char	name[256];
	char	answer[ANSWER_MAX + 1];
	char	group_id[24];
};

/* fill - *m from row 0 of r: account, status, membership id, status,
 * role, email, name, join answer, group id. */
static void
fill(PGresult *r, struct member *m)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->account, sizeof(m->account), "%s", PQgetvalue(r, 0, 0));
	snprintf(m->astatus, sizeof(m->astatus), "%s", PQgetvalue(r, 0, 1));
	snprintf(m->id, sizeof(m->id), "%s", PQgetvalue(r, 0, 2));
	snprintf(m->status, sizeof(m->status), "%s", PQgetvalue(r, 0, 3));
	snprintf(m->role, sizeof(m->role), "%s", PQgetvalue(r, 0, 4));
	snprintf(m->email, sizeof(m->email), "%s", PQgetvalue(r, 0, 5));
	snprintf(m->name, sizeof(m->name), "%s", PQgetvalue(r, 0, 6));
	snprintf(m->answer, sizeof(m->answer), "%s", PQgetvalue(r, 0, 7));
	snprintf(m->group_id, sizeof(m->group_id), "%s", PQgetvalue(r, 0, 8));
}

#define MEMBER_COLS	"a.id, a.status, coalesce(m.id::text, ''), " \
	"coalesce(m.status, ''), coalesce(m.role, ''), a.email, " \
	"a.display_name, coalesce(m.join_answer, ''), " \
	"coalesce(m.group_id::text, '') "

/* by_email - the account of email and its membership of g: 1, 0 when
 * there is no account, -1 on error. */
static int
by_email(struct db *d, const struct ms_group *g, const char *email,
    struct member *m)
{
	PGresult *r;
	int found;

	memset(m, 0, sizeof(*m));
	r = db_query(d, "SELECT " MEMBER_COLS "FROM accounts a LEFT JOIN "
	    "memberships m ON m.account_id = a.id AND m.group_id = $1 "
	    "WHERE lower(a.email) = lower($2)", DB_PARAMS(g->id, email));
	if (r == NULL)
		return -1;
	if ((found = PQntuples(r) > 0))
		fill(r, m);
	PQclear(r);
	return found;
}

/* by_id - membership id of group g, locked: 1, 0 when gone or of
 * another group, -1 on error. */
static int
by_id(struct db *d, const struct ms_group *g, long long id,
    struct member *m)
{
	char ids[24];
	PGresult *r;
	int found;

	memset(m, 0, sizeof(*m));
	snprintf(ids, sizeof(ids), "%lld", id);
	r = db_query(d, "SELECT " MEMBER_COLS "FROM memberships m JOIN "
	    "accounts a ON a.id = m.account_id WHERE m.id = $1::bigint AND "
	    "m.group_id = $2 FOR UPDATE OF m", DB_PARAMS(ids, g->id));
	if (r == NULL)
		return -1;
	if ((found = PQntuples(r) > 0))
		fill(r, m);
	PQclear(r);
	return found;
}

/* banned - 1 if g bans email or its domain, 0 if not, -1 on error. */
static int
banned(struct db *d, const struct ms_group *g, const char *email)
{
	return db_query_value(d, "SELECT 1 FROM group_bans WHERE group_id = "
	    "$1 AND pattern IN (lower($2), '@' || lower(substring($2 from "
	    "'@([^@]*)$')))", DB_PARAMS(g->id, email), NULL, 0);
}

/* email_ok - email would pass accounts_email_check. */
static int
email_ok(const char *email)
{
	const char *at = strchr(email, '@');
	size_t n = strlen(email);

	return n <= EMAIL_MAX && at != NULL && at != email && at[1] != '\0' &&
	    strchr(at + 1, '@') == NULL && strcspn(email, " \t\r\n\f\v") == n;
}

/* say - reply text to to and fill *a (status, reason); -1 on error. */
static int
say(struct db *d, const struct ms_group *g, const struct ms_submission *s,
    const char *to, const char *cmd, const char *subject, const char *text,
    const char *reply_to, struct ms_action *a, const char *status,
    const char *reason)
{
	char *subj = xasprintf("%s: %s", g->name, subject);
	int rc;

	rc = messageserver_command_reply(d, g, s, to, cmd, subj, text,
	    reply_to);
	free(subj);
	if (rc == -1)
		return -1;
	a->status = status;
	snprintf(a->reason, sizeof(a->reason), "%s%s", reason,
	    messageserver_command_noreply(rc));
	return 0;
}

/* request - send the confirmation request for op on membership m. */
static int
request(struct db *d, const struct ms_group *g, const struct ms_submission *s,
    const struct member *m, enum confirm_op op, const char *question,
    struct ms_action *a)
{
	struct strbuf *sb = strbuf_new(2048);
	char *token, *addr;
	int rc;

	token = confirm_token(op, strtoll(m->id, NULL, 10),
	    time(NULL) + (time_t)cfg.confirm_days * 86400);
	addr = xasprintf("%s+confirm-%s@%s", g->name, token, g->domain);
	strbuf_appendf(sb, "Someone, probably you, asked to %s %s %s %s@%s.\n"
	    "\nTo confirm, reply to this message (the reply goes to %s)",
	    op == CONFIRM_SUBSCRIBE ? "subscribe" : "remove", m->email,
	    op == CONFIRM_SUBSCRIBE ? "to" : "from", g->name, g->domain,
	    addr);
	if (cfg.public_url != NULL)
		strbuf_appendf(sb, "\nor open %s/confirm?t=%s", cfg.public_url,
		    token);
	strbuf_appendf(sb, ".\n\nIf it was not you, ignore this message: %s."
	    "  The request expires in %d days.\n", op == CONFIRM_SUBSCRIBE ?
	    "nothing happens without a confirmation" : "you stay a member",
	    cfg.confirm_days);
	if (question != NULL && question[0] != '\0')
		strbuf_appendf(sb, "\nThe group's moderators approve new "
		    "members and ask:\n  %s\nYour answer, from the text of "
		    "your message:\n  %s\n", question,
		    m->answer[0] ? m->answer : "(none; to give one, send "
		    "the subscribe message again with your answer as its "
		    "text)");
	rc = say(d, g, s, m->email, op == CONFIRM_SUBSCRIBE ? "subscribe" :
	    "unsubscribe", op == CONFIRM_SUBSCRIBE ? "confirm your "
	    "subscription" : "confirm that you leave", sb->buf, addr, a,
	    "confirm", op == CONFIRM_SUBSCRIBE ? "subscribe" : "unsubscribe");
	free(addr);
	free(token);
	strbuf_free(sb);
	return rc;
}

/* join_answer - the answer to the join question from the text of the
 * command: up to the signature, trimmed, at most ANSWER_MAX bytes cut on
 * a character boundary. */
static void
join_answer(const char *text, char *out, size_t len)
{
	const char *line;
	size_t n;

	text += strspn(text, " \t\r\n");
	/* the signature starts at a line "-- " (CRLF or LF) */
	for (line = text; *line != '\0'; line += strcspn(line, "\n") +
	    (line[strcspn(line, "\n")] == '\n'))
		if (strncmp(line, "-- \n", 4) == 0 ||
		    strncmp(line, "-- \r\n", 5) == 0)
			break;
	n = (size_t)(line - text);
	if (n > ANSWER_MAX)
		n = ANSWER_MAX;
	if (n >= len)
		n = len - 1;
	while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
		n--;	/* never cut a UTF-8 sequence */
	while (n > 0 && strchr(" \t\r\n", text[n - 1]) != NULL)
		n--;
	memcpy(out, text, n);
	out[n] = '\0';
}

/* subscribe - group+subscribe: make or reuse a pending membership and
 * ask the sender to confirm it. */
static int
subscribe(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, struct ms_action *a)
{
	const char *email = s->p->from_addr;
	char question[1024], answer[ANSWER_MAX + 1];
	struct member m;
	int rc;

	if (!email_ok(email)) {
		a->status = "ignored";
		snprintf(a->reason, sizeof(a->reason), "bad_address");
		return 0;
	}
	if (g->archived)
		return say(d, g, s, email, "subscribe", "not subscribed",
		    "The group is archived and takes no new members.\n",
		    NULL, a, "done", "archived");
	if ((rc = banned(d, g, email)) != 0)
		return rc == -1 ? -1 : say(d, g, s, email, "subscribe",
		    "not subscribed", "Sorry, this address cannot join the "
		    "group.\n", NULL, a, "done", "banned");
	if (db_query_value(d, "SELECT CASE WHEN restricted_membership THEN "
	    "left(join_question, 1000) END FROM groups WHERE id = $1",
	    DB_PARAMS(g->id), question, sizeof(question)) == -1)
		return -1;
	join_answer(question[0] ? s->p->body_text : "", answer,
	    sizeof(answer));
	if ((rc = by_email(d, g, email, &m)) == -1)
		return -1;
	if (rc == 1 && (strcmp(m.astatus, "disabled") == 0 ||
	    strcmp(m.astatus, "deleted") == 0))
		return say(d, g, s, email, "subscribe", "not subscribed",
		    "Sorry, this address cannot join the group.\n", NULL, a,
		    "done", "account_disabled");
	if (strcmp(m.status, "active") == 0)
		return say(d, g, s, email, "subscribe", "already a member",
		    "You are already a member of the group; nothing "
		    "changed.\n", NULL, a, "done", "already_member");
	if (strcmp(m.status, "pending_approval") == 0)
		return say(d, g, s, email, "subscribe", "waiting for approval",
		    "Your request to join waits for the group's "
		    "moderators.\n", NULL, a, "done", "pending_approval");
	/* the WHERE mirrors accounts_email_check, whose [:space:] is wider
	 * than email_ok's: an address it refuses is not made */
	if (rc == 0 && db_exec(d, "INSERT INTO accounts (email, "
	    "display_name, status) SELECT $1, left($2, 200), 'pending' "
	    "WHERE $1 ~ '^[^@[:space:]]+@[^@[:space:]]+$' "
	    "ON CONFLICT ((lower(email))) DO NOTHING",
	    DB_PARAMS(email, s->p->from_name)) == -1)
		return -1;
	if (m.id[0] == '\0' && db_exec(d, "INSERT INTO memberships "
	    "(group_id, account_id, status, join_answer) SELECT $1, a.id, "
	    "'pending_confirmation', $3 FROM accounts a WHERE lower(a.email) "
	    "= lower($2) ON CONFLICT (group_id, account_id) DO NOTHING",
	    DB_PARAMS(g->id, email, answer)) == -1)
		return -1;
	if (m.id[0] != '\0' && answer[0] != '\0' && db_exec(d, "UPDATE "
	    "memberships SET join_answer = $2 WHERE id = $1::bigint",
	    DB_PARAMS(m.id, answer)) == -1)
		return -1;
	if ((rc = by_email(d, g, email, &m)) != 1 ||
	    strcmp(m.status, "pending_confirmation") != 0) {
		if (rc == -1)
			return -1;
		/* a concurrent command got there first */
		a->status = "ignored";
		snprintf(a->reason, sizeof(a->reason), "concurrent");
		return 0;
	}
	return request(d, g, s, &m, CONFIRM_SUBSCRIBE, question, a);
}

/* unsubscribe - group+unsubscribe: ask the member to confirm. */
static int
unsubscribe(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, struct ms_action *a)
{
	const char *email = s->p->from_addr;
	struct member m;
	int rc;

	if ((rc = by_email(d, g, email, &m)) == -1)
		return -1;
	if (rc == 0 || m.id[0] == '\0')
		return say(d, g, s, email, "unsubscribe", "not a member",
		    "This address is not a member of the group, so there is "
		    "nothing to leave.\n", NULL, a, "done", "not_member");
	if (strcmp(m.role, "owner") == 0)
		return say(d, g, s, email, "unsubscribe", "not unsubscribed",
		    "An owner leaves the group on the web, so that it is not "
		    "left without one by mistake.\n", NULL, a, "done", "owner");
	return request(d, g, s, &m, CONFIRM_UNSUBSCRIBE, NULL, a);
}

/* leave - remove membership m (locked), log it, tell the member. */
static int
leave(struct db *d, const struct ms_group *g, const struct ms_submission *s,
    const struct member *m, const char *via, struct ms_action *a)
{
	char *text;
	int rc;

	if (db_exec(d, "INSERT INTO activity_log (group_id, actor_id, action, "
	    "details) VALUES ($1, $2::bigint, 'member.unsubscribe', "
	    "jsonb_build_object('via', $3::text))",
	    DB_PARAMS(g->id, m->account, via)) == -1 ||
	    db_exec(d, "DELETE FROM memberships WHERE id = $1::bigint",
	    DB_PARAMS(m->id)) == -1)
		return -1;
	text = xasprintf("%s is no longer a member of %s@%s and gets no more "
	    "mail from it.  To join again, send a message to "
	    "%s+subscribe@%s.\n", m->email, g->name, g->domain, g->name,
	    g->domain);
	rc = say(d, g, s, m->email, "unsubscribe", "unsubscribed", text,
	    NULL, a, "done", "unsubscribed");
	free(text);
	return rc;
}

/* activate - confirmed subscription m: active, or pending_approval when
 * the group restricts membership (the moderators are told); refused when
 * the group is archived, the account disabled or the address banned. */
static int
activate(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, const struct member *m,
    struct ms_action *a)
{
	char welcome[4096], *text;
	PGresult *r;
	int restricted, rc;

	/* what subscribe refused may have come true since the request */
	if (g->archived)
		return say(d, g, s, m->email, "confirm", "not subscribed",
		    "The group is archived and takes no new members.\n",
		    NULL, a, "done", "archived");
	if (strcmp(m->astatus, "disabled") == 0 ||
	    strcmp(m->astatus, "deleted") == 0)
		return say(d, g, s, m->email, "confirm", "not subscribed",
		    "Sorry, this address cannot join the group.\n", NULL, a,
		    "done", "account_disabled");
	if ((rc = banned(d, g, m->email)) != 0)
		return rc == -1 ? -1 : say(d, g, s, m->email, "confirm",
		    "not subscribed", "Sorry, this address cannot join the "
		    "group.\n", NULL, a, "done", "banned");
	r = db_query(d, "SELECT restricted_membership, left(welcome_message, "
	    "4000) FROM groups WHERE id = $1", DB_PARAMS(g->id));
	if (r == NULL || PQntuples(r) != 1) {
		PQclear(r);
		return -1;
	}
	restricted = PQgetvalue(r, 0, 0)[0] == 't';
	snprintf(welcome, sizeof(welcome), "%s", PQgetvalue(r, 0, 1));
	PQclear(r);
	/* the address is proven: the account may receive mail */
	if (db_exec(d, "UPDATE accounts SET email_verified = true, "
	    "email_verified_at = coalesce(email_verified_at, now()), "
	    "status = CASE WHEN status = 'pending' THEN 'active' ELSE status "
	    "END WHERE id = $1::bigint", DB_PARAMS(m->account)) == -1 ||
	    db_exec(d, "UPDATE memberships SET status = $2 WHERE id = "
	    "$1::bigint", DB_PARAMS(m->id, restricted ? "pending_approval" :
	    "active")) == -1 ||
	    db_exec(d, "INSERT INTO activity_log (group_id, actor_id, action, "
	    "details) VALUES ($1, $2::bigint, $3, '{\"via\": \"email\"}')",
	    DB_PARAMS(g->id, m->account, restricted ? "member.request" :
	    "member.join")) == -1)
		return -1;
	if (restricted) {
		if (messageserver_notice_member_pending(d, g,
		    strtoll(m->id, NULL, 10), m->email, m->name,
		    m->answer) == -1)
			return -1;
		return say(d, g, s, m->email, "confirm", "waiting for approval",
		    "Thank you: your address is confirmed.  The group's "
		    "moderators approve new members; you will hear from them."
		    "\n", NULL, a, "done", "pending_approval");
	}
	text = xasprintf("Welcome to %s (%s@%s): you are now a member.\n\n"
	    "%s%sTo post, write to %s@%s.\n", g->title[0] ? g->title : g->name,
	    g->name, g->domain, welcome, welcome[0] ? "\n\n" : "", g->name,
	    g->domain);
	rc = say(d, g, s, m->email, "confirm", "welcome", text, NULL, a,
	    "done", "subscribed");
	free(text);
	return rc;
}

/* confirm - group+confirm-TOKEN: act on a confirmation request. */
static int
confirm(struct db *d, const struct ms_group *g, const struct ms_submission *s,
    const char *token, struct ms_action *a)
{
	struct confirm c;
	struct member m;
	int v, rc;

	a->status = "ignored";
	if ((v = confirm_check(token, time(NULL), &c)) == CONFIRM_BAD) {
		snprintf(a->reason, sizeof(a->reason), "bad_token");
		return 0;
	}
	if ((rc = by_id(d, g, c.membership_id, &m)) != 1 ||
	    (c.op == CONFIRM_SUBSCRIBE &&
	    strcmp(m.status, "pending_confirmation") != 0)) {
		snprintf(a->reason, sizeof(a->reason), "spent_token");
		return rc == -1 ? -1 : 0;
	}
	if (v == CONFIRM_EXPIRED)
		return say(d, g, s, m.email, "confirm", "request expired",
		    "This confirmation request has expired, so nothing "
		    "changed.  Send the command again for a new one.\n", NULL,
		    a, "done", "expired_token");
	if (c.op == CONFIRM_UNSUBSCRIBE)
		return leave(d, g, s, &m, "email-confirmed", a);
	return activate(d, g, s, &m, a);
}

/* unsubscribe_token - group+unsubscribe-TOKEN from a member's footer:
 * the token (purpose "unsubscribe", payload the membership id) is the
 * authority, so the membership goes at once. */
static int
unsubscribe_token(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, const char *token, struct ms_action *a)
{
	unsigned char key[TOKEN_KEY_LEN];
	char *payload = NULL;
	struct member m;
	size_t plen;
	int rc;

	a->status = "ignored";
	token_derive(cfg.secret ? cfg.secret : "",
	    cfg.secret ? strlen(cfg.secret) : 0, "unsubscribe", key);
	if (token_verify(key, "unsubscribe", token, time(NULL), &payload,
	    &plen) != TOKEN_OK || plen == 0 || plen > 18 ||
	    strspn(payload, "0123456789") != plen) {
		free(payload);
		snprintf(a->reason, sizeof(a->reason), "bad_token");
		return 0;
	}
	rc = by_id(d, g, strtoll(payload, NULL, 10), &m);
	free(payload);
	if (rc != 1) {
		snprintf(a->reason, sizeof(a->reason), "spent_token");
		return rc;
	}
	return leave(d, g, s, &m, "email-token", a);
}

/* messageserver_command_member - subscribe, unsubscribe and the token
 * commands, for messageserver_command. */
int
messageserver_command_member(struct db *d, const struct ms_group *g,
    enum cmdaddr_cmd cmd, const char *arg, const struct ms_submission *s,
    struct ms_action *a)
{
	switch (cmd) {
	case CMDADDR_SUBSCRIBE:
		return subscribe(d, g, s, a);
	case CMDADDR_UNSUBSCRIBE:
		return unsubscribe(d, g, s, a);
	case CMDADDR_CONFIRM:
		return confirm(d, g, s, arg, a);
	case CMDADDR_UNSUBSCRIBE_TOKEN:
		return unsubscribe_token(d, g, s, arg, a);
	default:
		a->status = "ignored";
		snprintf(a->reason, sizeof(a->reason), "not a member command");
		return 0;
	}
}
