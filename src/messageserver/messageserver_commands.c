/* SPDX-License-Identifier: MIT */
/*
 * messageserver_commands.c - email commands (group+COMMAND[-ARG]@domain,
 * parsed by cmdaddr.c), inside the inbound transaction.
 *
 * First the loop and abuse checks: a message from the null sender, an
 * auto-responder (Auto-Submitted other than "no", X-Autoreply, Precedence
 * bulk, junk, list or auto_reply) or one that has been through our lists
 * (our List-Id or X-Loop) is ignored without a reply.  Then the command:
 * help here, the delivery switches, vacations and mute/follow here too
 * (members only), subscribing, unsubscribing and confirmations in
 * messageserver_commands_member.c.  Every answer is a reply from
 * group+owner@domain with Auto-Submitted: auto-replied, queued in the
 * outbox with the transaction; replies to one address are limited per
 * hour (command_replies), and none goes to an address of ours.  The
 * sender is the From address; what a forged From could do with that is
 * at most change a member's delivery, and the member hears of it.
 * docs/commands.md is the user's view.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmdaddr.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "messageserver.h"
#include "strbuf.h"
#include "xalloc.h"

#define CMD_REPLIES_PER_HOUR	"5"	/* per address, all groups */
#define CMD_REPLIES_PRUNE	"100"	/* old rows removed per reply */

/* Why a reply was not sent (messageserver_command_reply). */
#define MS_NOREPLY_LIMIT	1	/* the hourly limit of the address */
#define MS_NOREPLY_OURS		2	/* an address of ours */
#define MS_NOREPLY_BAD		3	/* longer than any address */

/* ours - 1 if addr is at one of our domains, 0 if not, -1 on error. */
static int
ours(struct db *d, const struct ms_group *g, const char *addr)
{
	const char *at = strrchr(addr, '@');

	if (at == NULL || strcasecmp(at + 1, g->domain) == 0 ||
	    (cfg.domain != NULL && strcasecmp(at + 1, cfg.domain) == 0))
		return 1;
	return db_query_value(d, "SELECT 1 FROM domains WHERE name = "
	    "lower($1)", DB_PARAMS(at + 1), NULL, 0);
}

/* queue - a composed reply for to, into the outbox. */
static int
queue(struct db *d, const struct ms_group *g, const char *raw, size_t len,
    const char *to)
{
	char *hex = messageserver_bytea_hex(raw, len);
	json_t *rcv = json_pack("[{s:s}]", "to", to);
	char *js = json_dumps(rcv, JSON_COMPACT);
	long rc;

	rc = db_exec(d, "INSERT INTO outbox (kind, group_id, raw, receivers) "
	    "VALUES ('notice', $1, $2::bytea, $3::jsonb)",
	    DB_PARAMS(g->id, hex, js));
	json_decref(rcv);
	free(hex);
	free(js);
	return rc == -1 ? -1 : 0;
}

/* messageserver_command_reply - answer a command: text to the address to
 * (from group+owner, In-Reply-To the command, Reply-To reply_to if not
 * NULL); 0 queued, MS_NOREPLY_* when not sent,
 * -1 on a database error. */
int
messageserver_command_reply(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, const char *to, const char *cmd,
    const char *subject, const char *text, const char *reply_to)
{
	struct ms_header hdr[] = { { "Auto-Submitted", "auto-replied" } };
	const char *rcpt[1] = { to };
	struct ms_compose c;
	struct strbuf *body;
	char *from, *raw;
	size_t len;
	int rc;

	if ((rc = ours(d, g, to)) != 0)
		return rc == 1 ? MS_NOREPLY_OURS : -1;
	if (strlen(to) > MS_ADDR_MAX)
		return MS_NOREPLY_BAD;
	/* one address at a time, so concurrent commands count right;
	 * lower() in SQL, as the column's check has it */
	if (db_query_value(d, "SELECT 1 FROM pg_advisory_xact_lock("
	    "hashtext('command_replies ' || lower($1)))", DB_PARAMS(to),
	    NULL, 0) == -1 ||
	    (rc = db_query_value(d, "SELECT 1 FROM command_replies WHERE "
	    "email = lower($1) AND sent_at > now() - interval '1 hour' "
	    "OFFSET " CMD_REPLIES_PER_HOUR " - 1", DB_PARAMS(to), NULL,
	    0)) == -1)
		return -1;
	if (rc == 1) {
		log_info("%s messageserver: %s had " CMD_REPLIES_PER_HOUR
		    " command replies this hour; no reply to %s", s->cid, to,
		    cmd);
		return MS_NOREPLY_LIMIT;
	}
	/* pruning skips rows another command is pruning: no deadlock */
	if (db_exec(d, "INSERT INTO command_replies (email, group_id, "
	    "command) VALUES (lower($1), $2, $3)",
	    DB_PARAMS(to, g->id, cmd)) == -1 ||
	    db_exec(d, "DELETE FROM command_replies WHERE id IN (SELECT id "
	    "FROM command_replies WHERE sent_at < now() - interval '1 day' "
	    "LIMIT " CMD_REPLIES_PRUNE " FOR UPDATE SKIP LOCKED)",
	    DB_NOPARAMS) == -1)
		return -1;

	body = strbuf_new(2048);
	strbuf_puts(body, text);
	strbuf_appendf(body, "\n-- \nAn automatic answer from %s@%s to a "
	    "command.  Commands: %s+help@%s.  The group's owners: "
	    "%s+owner@%s\n", g->name, g->domain, g->name, g->domain, g->name,
	    g->domain);
	from = xasprintf("%s+owner@%s", g->name, g->domain);
	memset(&c, 0, sizeof(c));
	c.from_name = g->title[0] ? g->title : g->name;
	c.from_addr = from;
	c.to = rcpt;
	c.nto = 1;
	c.reply_to = reply_to;
	c.subject = subject;
	c.text = body->buf;
	c.msgid_domain = g->domain;
	c.in_reply_to = s->p->message_id;
	c.headers = hdr;
	c.nheaders = 1;
	raw = messageserver_compose(&c, &len);
	rc = queue(d, g, raw, len, to);
	free(raw);
	free(from);
	strbuf_free(body);
	return rc;
}

/* messageserver_command_noreply - what a reason says about a reply not
 * sent (rc of messageserver_command_reply); "" when it was sent. */
const char *
messageserver_command_noreply(int rc)
{
	switch (rc) {
	case MS_NOREPLY_LIMIT:
		return " (no reply: limit)";
	case MS_NOREPLY_OURS:
		return " (no reply: our address)";
	case MS_NOREPLY_BAD:
		return " (no reply: bad address)";
	default:
		return "";
	}
}

/* has_line_with - 1 if one of the lines of hdr contains needle, compared
 * in ASCII lower case (needle in lower case). */
static int
has_line_with(const char *hdr, const char *needle)
{
	char *lc;
	size_t i;
	int found;

	if (hdr == NULL)
		return 0;
	lc = xstrdup(hdr);
	for (i = 0; lc[i] != '\0'; i++)
		if (lc[i] >= 'A' && lc[i] <= 'Z')
			lc[i] = (char)(lc[i] - 'A' + 'a');
	found = strstr(lc, needle) != NULL;
	free(lc);
	return found;
}

/* word_is - 1 if hdr, trimmed, is one of words (case-insensitive). */
static int
word_is(const char *hdr, const char *const *words)
{
	size_t n;

	hdr += strspn(hdr, " \t");
	n = strcspn(hdr, " \t\r\n;");
	for (; *words != NULL; words++)
		if (strlen(*words) == n && strncasecmp(hdr, *words, n) == 0)
			return 1;
	return 0;
}

/* machine - why s must get no answer (a machine or a loop), or NULL. */
static const char *
machine(const struct ms_group *g, const struct ms_submission *s)
{
	static const char *const no[] = { "no", NULL };
	static const char *const prec[] = { "bulk", "junk", "list",
	    "auto_reply", NULL };
	const struct ms_parsed *p = s->p;
	const char *doms[2] = { g->domain, cfg.domain };
	char needle[MS_ADDR_MAX + 3];
	size_t i;

	if (s->mail_from == NULL || s->mail_from[0] == '\0')
		return "null_sender";
	if (p->autoreply)
		return "auto_reply";
	if (p->auto_submitted != NULL && !word_is(p->auto_submitted, no))
		return "auto_submitted";
	if (p->precedence != NULL && word_is(p->precedence, prec))
		return "precedence";
	for (i = 0; i < 2; i++) {
		if (doms[i] == NULL)
			continue;
		/* our List-Id <name.domain>, our X-Loop name@domain */
		snprintf(needle, sizeof(needle), ".%s>", doms[i]);
		if (has_line_with(p->list_ids, needle))
			return "loop";
		snprintf(needle, sizeof(needle), "@%s", doms[i]);
		if (has_line_with(p->x_loops, needle))
			return "loop";
	}
	if (strchr(p->from_addr, '@') == NULL)
		return "no_sender";
	return NULL;
}

/* help - the commands, one line each, and where the group lives. */
static int
help(struct db *d, const struct ms_group *g, const struct ms_submission *s,
    struct ms_action *a)
{
	static const char *const lines[][2] = {
		{ "subscribe", "join the group (you confirm by a reply)" },
		{ "unsubscribe", "leave the group (you confirm by a reply)" },
		{ "digest", "get digests of full messages instead" },
		{ "plaindigest", "get plain-text digests instead" },
		{ "summary", "get a daily summary instead" },
		{ "special", "get only special notices" },
		{ "nomail", "get no mail (read on the web)" },
		{ "single", "get each message as it is posted" },
		{ "nomail-until-YYYY-MM-DD", "no mail through that date (up "
		    "to a year ahead); then it resumes by itself" },
		{ "mute-N", "no more mail of topic number N" },
		{ "follow-N", "follow topic number N" },
		{ "mute-tag-NAME", "no more mail of topics tagged #NAME" },
		{ "follow-tag-NAME", "follow topics tagged #NAME" },
		{ "help", "this list" },
		{ "owner", "write to the group's owners" },
	};
	struct strbuf *sb = strbuf_new(2048);
	char *subject, desc[1024];
	size_t i;
	int rc;

	if (db_query_value(d, "SELECT left(description, 1000) FROM groups "
	    "WHERE id = $1", DB_PARAMS(g->id), desc, sizeof(desc)) == -1) {
		strbuf_free(sb);
		return -1;
	}
	strbuf_appendf(sb, "%s (%s@%s)\n", g->title[0] ? g->title : g->name,
	    g->name, g->domain);
	if (desc[0] != '\0')
		strbuf_appendf(sb, "%s\n", desc);
	if (cfg.public_url != NULL)
		strbuf_appendf(sb, "On the web: %s/g/%s\n", cfg.public_url,
		    g->name);
	strbuf_puts(sb, "\nSend a message (subject and text do not matter) "
	    "to:\n\n");
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		strbuf_appendf(sb, "  %s+%s@%s\n      %s\n", g->name,
		    lines[i][0], g->domain, lines[i][1]);
	strbuf_appendf(sb, "\nAliases: join, leave and signoff, individual "
	    "and mail.  Topic numbers are in the web address of a topic "
	    "and in the footer of its messages.\n");
	subject = xasprintf("%s: help", g->name);
	rc = messageserver_command_reply(d, g, s, s->p->from_addr, "help",
	    subject, sb->buf, NULL);
	free(subject);
	strbuf_free(sb);
	if (rc == -1)
		return -1;
	a->status = "done";
	snprintf(a->reason, sizeof(a->reason), "help%s",
	    messageserver_command_noreply(rc));
	return 0;
}

/* answer - reply text to the sender of a settings command and fill *a
 * with status done and reason; -1 on a database error. */
static int
answer(struct db *d, const struct ms_group *g, const struct ms_submission *s,
    const char *cmd, const char *text, struct ms_action *a,
    const char *reason)
{
	char *subject = xasprintf("%s: %s", g->name, cmd);
	int rc;

	rc = messageserver_command_reply(d, g, s, s->p->from_addr, cmd,
	    subject, text, NULL);
	free(subject);
	if (rc == -1)
		return -1;
	a->status = "done";
	snprintf(a->reason, sizeof(a->reason), "%s%s", reason,
	    messageserver_command_noreply(rc));
	return 0;
}

/* The delivery switches and the memberships.delivery value each sets. */
static const struct {
	enum cmdaddr_cmd	 cmd;
	const char		*delivery;
	const char		*what;
} deliveries[] = {
	{ CMDADDR_DIGEST, "full_digest", "digests of full messages" },
	{ CMDADDR_PLAINDIGEST, "plain_digest", "plain-text digests" },
	{ CMDADDR_SUMMARY, "daily_summary", "a daily summary" },
	{ CMDADDR_SPECIAL, "special_only", "special notices only" },
	{ CMDADDR_NOMAIL, "no_email", "no mail (read the group on the web)" },
	{ CMDADDR_SINGLE, "individual", "each message as it is posted" },
};

/* setting - a delivery switch, vacation, mute or follow by the active
 * member mid. */
static int
setting(struct db *d, const struct ms_group *g, const struct ms_submission *s,
    enum cmdaddr_cmd cmd, const char *arg, const char *mid,
    struct ms_action *a)
{
	const char *name = cmdaddr_name(cmd);
	char val[MS_ADDR_MAX + 64], *text;
	const char *mode;
	size_t i;
	long n;
	int rc;

	for (i = 0; i < sizeof(deliveries) / sizeof(deliveries[0]); i++) {
		if (deliveries[i].cmd != cmd)
			continue;
		/* any switch also ends a vacation */
		if (db_exec(d, "UPDATE memberships SET delivery = $2, "
		    "nomail_until = NULL WHERE id = $1::bigint",
		    DB_PARAMS(mid, deliveries[i].delivery)) == -1)
			return -1;
		text = xasprintf("From now on you get %s from %s@%s.\n",
		    deliveries[i].what, g->name, g->domain);
		snprintf(val, sizeof(val), "delivery=%s",
		    deliveries[i].delivery);
		rc = answer(d, g, s, name, text, a, val);
		free(text);
		return rc;
	}
	switch (cmd) {
	case CMDADDR_NOMAIL_UNTIL:
		rc = db_query_value(d, "SELECT 1 WHERE $1::date > current_date "
		    "AND $1::date <= current_date + interval '1 year'",
		    DB_PARAMS(arg), NULL, 0);
		if (rc == -1)
			return -1;
		if (rc == 0) {
			text = xasprintf("%s is not a date after today and "
			    "within a year: nothing changed.\n", arg);
			rc = answer(d, g, s, name, text, a, "bad_date");
			free(text);
			return rc;
		}
		if (db_exec(d, "UPDATE memberships SET nomail_until = "
		    "$2::date WHERE id = $1::bigint", DB_PARAMS(mid, arg)) == -1)
			return -1;
		text = xasprintf("You get no mail from %s@%s through %s; it "
		    "resumes by itself the day after.  To have it back "
		    "sooner, send a message to %s+single@%s.\n", g->name,
		    g->domain, arg, g->name, g->domain);
		snprintf(val, sizeof(val), "nomail_until=%s", arg);
		rc = answer(d, g, s, name, text, a, val);
		free(text);
		return rc;
	case CMDADDR_MUTE:
	case CMDADDR_FOLLOW:
		mode = cmd == CMDADDR_MUTE ? "mute" : "follow";
		rc = db_query_value(d, "SELECT left(subject, 200) FROM topics "
		    "WHERE id = $1::bigint AND group_id = $2",
		    DB_PARAMS(arg, g->id), val, sizeof(val));
		if (rc == -1)
			return -1;
		if (rc == 0) {
			text = xasprintf("%s@%s has no topic number %s: nothing "
			    "changed.\n", g->name, g->domain, arg);
			rc = answer(d, g, s, name, text, a, "no_such_topic");
			free(text);
			return rc;
		}
		n = db_exec(d, "INSERT INTO topic_subscriptions (membership_id, "
		    "topic_id, mode) VALUES ($1::bigint, $2::bigint, $3) "
		    "ON CONFLICT (membership_id, topic_id) DO UPDATE SET "
		    "mode = EXCLUDED.mode", DB_PARAMS(mid, arg, mode));
		if (n == -1)
			return -1;
		text = xasprintf("%s topic %s: %s\n", cmd == CMDADDR_MUTE ?
		    "You no longer get mail of" : "You follow", arg, val);
		snprintf(val, sizeof(val), "%s topic %s", mode, arg);
		rc = answer(d, g, s, name, text, a, val);
		free(text);
		return rc;
	case CMDADDR_MUTE_TAG:
	case CMDADDR_FOLLOW_TAG:
		mode = cmd == CMDADDR_MUTE_TAG ? "mute" : "follow";
		rc = db_query_value(d, "WITH h AS (SELECT id, name FROM "
		    "hashtags WHERE group_id = $1 AND lower(name) = lower($2)), "
		    "i AS (INSERT INTO hashtag_subscriptions (membership_id, "
		    "hashtag_id, mode) SELECT $3::bigint, id, $4 FROM h "
		    "ON CONFLICT (membership_id, hashtag_id) DO UPDATE SET "
		    "mode = EXCLUDED.mode) SELECT name FROM h",
		    DB_PARAMS(g->id, arg, mid, mode), val, sizeof(val));
		if (rc == -1)
			return -1;
		if (rc == 0) {
			text = xasprintf("%s@%s has no hashtag #%s: nothing "
			    "changed.\n", g->name, g->domain, arg);
			rc = answer(d, g, s, name, text, a, "no_such_hashtag");
			free(text);
			return rc;
		}
		text = xasprintf("%s #%s.\n", cmd == CMDADDR_MUTE_TAG ?
		    "You no longer get mail of topics tagged" :
		    "You follow topics tagged", val);
		snprintf(val, sizeof(val), "%s hashtag %s", mode, arg);
		rc = answer(d, g, s, name, text, a, val);
		free(text);
		return rc;
	default:
		a->status = "ignored";
		snprintf(a->reason, sizeof(a->reason), "not a setting");
		return 0;
	}
}

/* settings - a member-only command: the sender's active membership, or
 * a short explanation to a stranger. */
static int
settings(struct db *d, const struct ms_group *g, const struct ms_submission *s,
    enum cmdaddr_cmd cmd, const char *arg, struct ms_action *a)
{
	char mid[24], *text;
	int rc;

	rc = db_query_value(d, "SELECT m.id FROM memberships m JOIN accounts "
	    "a ON a.id = m.account_id WHERE m.group_id = $1 AND "
	    "lower(a.email) = lower($2) AND m.status = 'active'",
	    DB_PARAMS(g->id, s->p->from_addr), mid, sizeof(mid));
	if (rc == -1)
		return -1;
	if (rc == 1)
		return setting(d, g, s, cmd, arg, mid, a);
	text = xasprintf("%s is not a member of %s@%s, so this command does "
	    "nothing.  To join, send a message to %s+subscribe@%s.\n",
	    s->p->from_addr, g->name, g->domain, g->name, g->domain);
	rc = answer(d, g, s, cmdaddr_name(cmd), text, a, "not_member");
	free(text);
	return rc;
}

int
messageserver_command(struct db *d, const struct ms_route *r,
    const struct ms_submission *s, struct ms_action *a)
{
	enum cmdaddr_cmd cmd = cmdaddr_command(r->command, r->detail);
	struct ms_group g;
	const char *why;
	int rc;

	a->status = "ignored";
	if ((rc = messageserver_group_load(d, r->domain, r->group, &g)) != 1) {
		snprintf(a->reason, sizeof(a->reason), "no such group");
		return rc;
	}
	if ((why = machine(&g, s)) != NULL) {
		snprintf(a->reason, sizeof(a->reason), "%s", why);
		return 0;
	}
	switch (cmd) {
	case CMDADDR_NONE:
	case CMDADDR_APPROVE:
	case CMDADDR_REJECT:
		snprintf(a->reason, sizeof(a->reason), "not a command here");
		return 0;
	case CMDADDR_HELP:
		return help(d, &g, s, a);
	case CMDADDR_SUBSCRIBE:
	case CMDADDR_UNSUBSCRIBE:
	case CMDADDR_CONFIRM:
	case CMDADDR_UNSUBSCRIBE_TOKEN:
		return messageserver_command_member(d, &g, cmd, r->detail, s,
		    a);
	default:
		return settings(d, &g, s, cmd, r->detail, a);
	}
}
