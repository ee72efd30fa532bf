/* SPDX-License-Identifier: MIT */
/*
 * messageserver_post.c - the posting pipeline for one group: what happens
 * to a message, whatever its source, once it is parsed.
 *
 * Inside the caller's transaction, in this order:
 *  1. duplicates: the group already archived or holds this Message-ID;
 *  2. loops and machines: our own List-Id or X-Loop, a null envelope
 *     sender, auto-replies (RFC 3834 auto-replied, X-Autoreply,
 *     Precedence junk/auto_reply) are dropped without a word; other
 *     Auto-Submitted mail and Precedence: bulk are held for a moderator;
 *  3. the sender: account by From address, its membership, group bans;
 *     when From is no member, the envelope sender's (a member posting
 *     from an alias whose MTA keeps the member's envelope);
 *  4. limits: size, attachments, the size of each attachment (rejected
 *     with a notice);
 *  5. policy: an archived group → reject; banned → reject; non-member → reject or hold by
 *     nonmember_posts (unless anyone may post); announcement-only groups
 *     take posts from moderators only; then the member's posting status,
 *     the group's moderate_all and moderate_new_topics, and moderated
 *     hashtags hold the post.  Owners and moderators are never held;
 *  6. the action: hold (pending_messages + a notice to the moderators),
 *     reject (a notice to the poster), or archive, queueing the fan-out
 *     in the outbox unless a no-email hashtag says otherwise.
 * A held message a moderator approves (messageserver_moderate.c) comes
 * back through messageserver_post_release: the same archive-and-queue
 * step, without the checks that held it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db.h"
#include "log.h"
#include "messageserver.h"
#include "xalloc.h"

/* The poster as the group knows them ("" when not). */
#define sender ms_sender

/* Effects of the hashtags of the subject and of the topic. */
struct tagflags {
	int	moderated;
	int	no_email;
	int	staff_only;
};

enum verdict { ACCEPT, HOLD, REJECT, DROP };

struct decision {
	enum verdict	 v;
	const char	*reason;	/* code, stored and logged */
	const char	*text;		/* what a person is told */
};

/* The columns of struct ms_group, in group_row's order. */
#define GROUP_COLS "g.id, g.name, g.domain, g.title, g.subject_tag, " \
	"g.who_can_post, g.nonmember_posts, g.reply_to, g.dmarc_rewrite, " \
	"g.moderate_all, g.moderate_new_topics, g.allow_attachments, " \
	"g.max_message_size, g.pending_expiry_days, g.status = 'archived', " \
	"coalesce(g.max_attachment_size, 0)"
#define GROUP_NCOLS 16

/* group_row - GROUP_COLS of row 0 of r into *g. */
static void
group_row(PGresult *r, struct ms_group *g)
{
	memset(g, 0, sizeof(*g));
	strlcpy_chk(g->id, PQgetvalue(r, 0, 0), sizeof(g->id));
	strlcpy_chk(g->name, PQgetvalue(r, 0, 1), sizeof(g->name));
	strlcpy_chk(g->domain, PQgetvalue(r, 0, 2), sizeof(g->domain));
	strlcpy_chk(g->title, PQgetvalue(r, 0, 3), sizeof(g->title));
	strlcpy_chk(g->subject_tag, PQgetvalue(r, 0, 4),
	    sizeof(g->subject_tag));
	strlcpy_chk(g->who_can_post, PQgetvalue(r, 0, 5),
	    sizeof(g->who_can_post));
	strlcpy_chk(g->nonmember_posts, PQgetvalue(r, 0, 6),
	    sizeof(g->nonmember_posts));
	strlcpy_chk(g->reply_to, PQgetvalue(r, 0, 7), sizeof(g->reply_to));
	strlcpy_chk(g->dmarc_rewrite, PQgetvalue(r, 0, 8),
	    sizeof(g->dmarc_rewrite));
	g->moderate_all = PQgetvalue(r, 0, 9)[0] == 't';
	g->moderate_new_topics = PQgetvalue(r, 0, 10)[0] == 't';
	g->allow_attachments = PQgetvalue(r, 0, 11)[0] == 't';
	g->max_message_size = strtol(PQgetvalue(r, 0, 12), NULL, 10);
	g->pending_expiry_days = (int)strtol(PQgetvalue(r, 0, 13), NULL, 10);
	g->archived = PQgetvalue(r, 0, 14)[0] == 't';
	g->max_attachment_size = strtol(PQgetvalue(r, 0, 15), NULL, 10);
}

int
messageserver_group_load(struct db *d, const char *domain, const char *name,
    struct ms_group *g)
{
	PGresult *r;

	memset(g, 0, sizeof(*g));
	r = db_query(d, "SELECT " GROUP_COLS " FROM groups g "
	    "WHERE g.domain = $1 AND g.name = $2 AND g.status <> 'disabled'",
	    DB_PARAMS(domain, name));
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	group_row(r, g);
	PQclear(r);
	return 1;
}

/*
 * What the pipeline reads before it decides, in one query with the group
 * (g.id): the duplicate (archived, or held while pending) and the poster
 * by From, their membership and the group's bans.  MSGID and FROM name
 * the query's parameters.
 */
#define CTX_COLS "dup.kind, dup.n, dup.topic, a.id, m.role, m.posting, " \
	"coalesce(m.status = 'active' AND a.status = 'active', false), " \
	"EXISTS (SELECT 1 FROM group_bans b WHERE b.group_id = g.id AND " \
	"(b.pattern = lower(" FROM ") OR " \
	"b.pattern = '@' || split_part(lower(" FROM "), '@', 2)))"
#define CTX_JOINS \
	"LEFT JOIN LATERAL (SELECT 'archived' AS kind, number AS n, " \
	"topic_id AS topic FROM messages WHERE group_id = g.id AND " \
	"message_id = " MSGID " UNION ALL SELECT 'held', id, 0 " \
	"FROM pending_messages WHERE group_id = g.id AND message_id = " \
	MSGID " AND status = 'pending' LIMIT 1) AS dup ON true " \
	"LEFT JOIN accounts a ON lower(a.email) = lower(" FROM ") " \
	"LEFT JOIN memberships m ON m.account_id = a.id AND m.group_id = g.id"

/* ctx_row - CTX_COLS of row 0 of r, from column c on, into *ctx. */
static void
ctx_row(PGresult *r, int c, struct ms_post_ctx *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	strlcpy_chk(ctx->dup, PQgetvalue(r, 0, c), sizeof(ctx->dup));
	ctx->dup_id = strtoll(PQgetvalue(r, 0, c + 1), NULL, 10);
	ctx->dup_topic = strtoll(PQgetvalue(r, 0, c + 2), NULL, 10);
	strlcpy_chk(ctx->sd.account_id, PQgetvalue(r, 0, c + 3),
	    sizeof(ctx->sd.account_id));
	strlcpy_chk(ctx->sd.role, PQgetvalue(r, 0, c + 4),
	    sizeof(ctx->sd.role));
	strlcpy_chk(ctx->sd.posting, PQgetvalue(r, 0, c + 5),
	    sizeof(ctx->sd.posting));
	ctx->sd.member = PQgetvalue(r, 0, c + 6)[0] == 't';
	ctx->sd.banned = PQgetvalue(r, 0, c + 7)[0] == 't';
}

int
messageserver_post_prepare(struct db *d, const char *domain,
    const char *name, const struct ms_submission *s, struct ms_group *g,
    struct ms_post_ctx *ctx)
{
	PGresult *r;

#define MSGID "$3"
#define FROM "$4"
	r = db_query(d, "SELECT " GROUP_COLS ", " CTX_COLS " FROM groups g "
	    CTX_JOINS " WHERE g.domain = $1 AND g.name = $2 "
	    "AND g.status <> 'disabled'", DB_PARAMS(domain, name,
	    s->p->message_id, s->p->from_addr));
#undef MSGID
#undef FROM
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	group_row(r, g);
	ctx_row(r, GROUP_NCOLS, ctx);
	PQclear(r);
	return 1;
}

/* ctx_load - the context of s in the loaded group g; 0 or -1. */
static int
ctx_load(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, struct ms_post_ctx *ctx)
{
	PGresult *r;

#define MSGID "$2"
#define FROM "$3"
	r = db_query(d, "SELECT " CTX_COLS " FROM (SELECT $1::bigint AS id) "
	    "AS g " CTX_JOINS, DB_PARAMS(g->id, s->p->message_id,
	    s->p->from_addr));
#undef MSGID
#undef FROM
	if (r == NULL)
		return -1;
	ctx_row(r, 0, ctx);
	PQclear(r);
	return 0;
}

/* ctx_duplicate - 1 (with res filled) if ctx found the Message-ID. */
static int
ctx_duplicate(const struct ms_post_ctx *ctx, struct ms_result *res)
{
	if (ctx->dup[0] == '\0')
		return 0;
	res->status = "duplicate";
	if (strcmp(ctx->dup, "held") == 0) {
		res->reason = "held";
		res->pending_id = ctx->dup_id;
	} else {
		res->number = ctx->dup_id;
		res->topic_id = ctx->dup_topic;
	}
	return 1;
}

/* duplicate - 1 (with res filled) if the group has this Message-ID
 * archived, or (held_too) held, 0 if not, -1 on error. */
static int
duplicate(struct db *d, const struct ms_group *g, const char *msgid,
    int held_too, struct ms_result *res)
{
	PGresult *r;
	int found;

	r = db_query(d, "SELECT 'archived', number, topic_id FROM messages "
	    "WHERE group_id = $1 AND message_id = $2 UNION ALL "
	    "SELECT 'held', id, 0 FROM pending_messages WHERE group_id = $1 "
	    "AND message_id = $2 AND status = 'pending' AND $3::boolean "
	    "LIMIT 1", DB_PARAMS(g->id, msgid, held_too ? "true" : "false"));
	if (r == NULL)
		return -1;
	if ((found = PQntuples(r) > 0)) {
		res->status = "duplicate";
		if (strcmp(PQgetvalue(r, 0, 0), "held") == 0) {
			res->reason = "held";
			res->pending_id = strtoll(PQgetvalue(r, 0, 1), NULL,
			    10);
		} else {
			res->number = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
			res->topic_id = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
		}
	}
	PQclear(r);
	return found;
}

/* contains_ci - 1 if one of the lines of hay contains needle (any case). */
static int
contains_ci(const char *hay, const char *needle)
{
	return hay != NULL && strcasestr(hay, needle) != NULL;
}

/* automation - the loop and machine checks; 1 with *dc set when they
 * decide. */
static int
automation(const struct ms_group *g, const struct ms_submission *s,
    struct decision *dc)
{
	const struct ms_parsed *p = s->p;
	char mark[2 * MS_ADDR_MAX + 8];
	const char *as = p->auto_submitted, *pr = p->precedence;

	snprintf(mark, sizeof(mark), "<%s.%s>", g->name, g->domain);
	if (contains_ci(p->list_ids, mark)) {
		*dc = (struct decision){ DROP, "loop", "our own List-Id" };
		return 1;
	}
	snprintf(mark, sizeof(mark), "%s@%s", g->name, g->domain);
	if (contains_ci(p->x_loops, mark)) {
		*dc = (struct decision){ DROP, "loop", "our own X-Loop" };
		return 1;
	}
	if (strcmp(s->source, "email") == 0 && s->mail_from[0] == '\0') {
		*dc = (struct decision){ DROP, "null_sender",
		    "a bounce or other null-sender mail" };
		return 1;
	}
	while (as != NULL && (*as == ' ' || *as == '\t'))
		as++;
	while (pr != NULL && (*pr == ' ' || *pr == '\t'))
		pr++;
	if (p->autoreply || (as != NULL &&
	    strncasecmp(as, "auto-replied", 12) == 0) || (pr != NULL &&
	    (strncasecmp(pr, "junk", 4) == 0 ||
	    strncasecmp(pr, "auto_reply", 10) == 0))) {
		*dc = (struct decision){ DROP, "auto_reply",
		    "an automatic reply" };
		return 1;
	}
	if (as != NULL && *as != '\0' && strncasecmp(as, "no", 2) != 0) {
		*dc = (struct decision){ HOLD, "auto_submitted",
		    "it was sent automatically (Auto-Submitted)" };
		return 1;
	}
	if (pr != NULL && strncasecmp(pr, "bulk", 4) == 0) {
		*dc = (struct decision){ HOLD, "bulk",
		    "it is marked as bulk mail (Precedence: bulk)" };
		return 1;
	}
	return 0;
}

/* sender_load - who the poster is in group g. */
static int
sender_load(struct db *d, const struct ms_group *g, const char *from,
    struct sender *sd)
{
	PGresult *r;

	memset(sd, 0, sizeof(*sd));
	r = db_query(d, "SELECT a.id, m.role, m.posting, "
	    "coalesce(m.status = 'active' AND a.status = 'active', false), "
	    "EXISTS (SELECT 1 FROM group_bans b WHERE b.group_id = $1 AND "
	    "(b.pattern = lower($2) OR "
	    "b.pattern = '@' || split_part(lower($2), '@', 2))) "
	    "FROM (SELECT 1) AS one "
	    "LEFT JOIN accounts a ON lower(a.email) = lower($2) "
	    "LEFT JOIN memberships m ON m.account_id = a.id "
	    "AND m.group_id = $1", DB_PARAMS(g->id, from));
	if (r == NULL)
		return -1;
	strlcpy_chk(sd->account_id, PQgetvalue(r, 0, 0),
	    sizeof(sd->account_id));
	strlcpy_chk(sd->role, PQgetvalue(r, 0, 1), sizeof(sd->role));
	strlcpy_chk(sd->posting, PQgetvalue(r, 0, 2), sizeof(sd->posting));
	sd->member = PQgetvalue(r, 0, 3)[0] == 't';
	sd->banned = PQgetvalue(r, 0, 4)[0] == 't';
	PQclear(r);
	return 0;
}

/* tags_load - what the hashtags of the subject and of topic ask for. */
static int
tags_load(struct db *d, const struct ms_group *g, const char *subject,
    const char *topic, struct tagflags *tf)
{
	char tags[MS_HASHTAGS_MAX][MS_HASHTAG_LEN + 1];
	size_t i, n = messageserver_hashtags(subject, tags, MS_HASHTAGS_MAX);
	json_t *ja;
	char *js;
	PGresult *r;

	memset(tf, 0, sizeof(*tf));
	if (n == 0 && topic[0] == '\0')
		return 0;	/* no tag, new topic: nothing to look up */
	ja = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(ja, json_string(tags[i]));
	js = json_dumps(ja, JSON_COMPACT);
	json_decref(ja);
	r = db_query(d, "SELECT coalesce(bool_or(moderated), false), "
	    "coalesce(bool_or(no_email), false), "
	    "coalesce(bool_or(moderators_only), false) FROM hashtags "
	    "WHERE group_id = $1 AND (lower(name) IN (SELECT "
	    "lower(jsonb_array_elements_text($2::jsonb))) OR id IN "
	    "(SELECT hashtag_id FROM topic_hashtags "
	    "WHERE topic_id = nullif($3, '')::bigint))",
	    DB_PARAMS(g->id, js, topic));
	free(js);
	if (r == NULL)
		return -1;
	tf->moderated = PQgetvalue(r, 0, 0)[0] == 't';
	tf->no_email = PQgetvalue(r, 0, 1)[0] == 't';
	tf->staff_only = PQgetvalue(r, 0, 2)[0] == 't';
	PQclear(r);
	return 0;
}

/* topic_load - the topic p joins ("" a new one) and what its hashtags
 * ask for; 0 or -1. */
static int
topic_load(struct db *d, const struct ms_group *g, const struct ms_parsed *p,
    char *topic, size_t len, struct tagflags *tf)
{
	int rc;

	if ((rc = messageserver_archive_topic(d, g->id, p, topic, len)) == -1)
		return -1;
	if (rc == 0)
		topic[0] = '\0';
	return tags_load(d, g, p->subject, topic, tf);
}

/* attachment_check - into why (len bytes) what to tell a poster whose
 * largest attachment is over the group's max_attachment_size (0: no
 * limit of its own); why[0] stays '\0' when none is. */
static void
attachment_check(const struct ms_group *g, const struct ms_parsed *p,
    char *why, size_t len)
{
	size_t i, big = 0;

	why[0] = '\0';
	if (p->natt == 0 || g->max_attachment_size <= 0)
		return;
	for (i = 1; i < p->natt; i++)
		if (p->att[i].len > p->att[big].len)
			big = i;
	if (p->att[big].len > (size_t)g->max_attachment_size)
		snprintf(why, len, "the attachment \"%s\" (%zu bytes) is larger "
		    "than this group accepts (at most %ld bytes an attachment)",
		    p->att[big].filename, p->att[big].len,
		    g->max_attachment_size);
}

/* decide - the group's policy applied to this poster and message;
 * big_attachment is attachment_check's text. */
static struct decision
decide(const struct ms_group *g, const struct ms_submission *s,
    const struct sender *sd, int new_topic, const struct tagflags *tf,
    const char *big_attachment)
{
	int staff = sd->member && (strcmp(sd->role, "owner") == 0 ||
	    strcmp(sd->role, "moderator") == 0);

	if (g->archived)
		return (struct decision){ REJECT, "group_archived",
		    "this group is archived and takes no new messages" };
	if (sd->banned || (sd->member && strcmp(sd->posting, "banned") == 0))
		return (struct decision){ REJECT, "banned",
		    "you are not allowed to post to this group" };
	if (s->rawlen > (size_t)g->max_message_size)
		return (struct decision){ REJECT, "size",
		    "the message is larger than this group accepts" };
	if (!g->allow_attachments && s->p->natt > 0)
		return (struct decision){ REJECT, "attachments",
		    "this group does not accept attachments" };
	if (big_attachment[0] != '\0')
		return (struct decision){ REJECT, "attachment_size",
		    big_attachment };
	if (!sd->member && strcmp(g->who_can_post, "anyone") != 0) {
		if (strcmp(g->nonmember_posts, "moderate") == 0)
			return (struct decision){ HOLD, "non_member",
			    "the sender is not a member of the group" };
		return (struct decision){ REJECT, "non_member",
		    "only members may post to this group, and you are not "
		    "a member (or are not yet confirmed)" };
	}
	if (strcmp(g->who_can_post, "moderators") == 0 && !staff)
		return (struct decision){ REJECT, "announce_only",
		    "only the group's moderators may post to this group" };
	if (staff)
		return (struct decision){ ACCEPT, "", "" };
	if (tf->staff_only)
		return (struct decision){ HOLD, "hashtag",
		    "it uses a hashtag reserved for moderators" };
	if (sd->member && strcmp(sd->posting, "moderated") == 0)
		return (struct decision){ HOLD, "moderated_member",
		    "posts from this member are moderated" };
	if (sd->member && strcmp(sd->posting, "new_member_moderated") == 0)
		return (struct decision){ HOLD, "new_member",
		    "posts from new members are moderated" };
	if (g->moderate_all)
		return (struct decision){ HOLD, "moderated_group",
		    "every post to this group is moderated" };
	if (new_topic && g->moderate_new_topics)
		return (struct decision){ HOLD, "new_topic",
		    "new topics in this group are moderated" };
	if (tf->moderated)
		return (struct decision){ HOLD, "hashtag",
		    "it uses a moderated hashtag" };
	return (struct decision){ ACCEPT, "", "" };
}

/* hold - into the moderation queue, and tell the moderators. */
static int
hold(struct db *d, const struct ms_group *g, const struct ms_submission *s,
    const struct sender *sd, const struct decision *dc,
    struct ms_result *res)
{
	const struct ms_parsed *p = s->p;
	char id[32], days[16], *hex;
	int rc;

	snprintf(days, sizeof(days), "%d", g->pending_expiry_days);
	hex = messageserver_bytea_hex(s->raw, s->rawlen);
	rc = db_query_value(d, "INSERT INTO pending_messages (group_id, "
	    "account_id, from_address, from_name, subject, message_id, "
	    "envelope_from, source, raw, reason, reason_detail, expires_at) "
	    "VALUES ($1, nullif($2, '')::bigint, $3, $4, $5, $6, $7, $8, "
	    "$9::bytea, $10, $11, now() + make_interval(days => $12::int)) "
	    "RETURNING id", 12, (const char *[]){ g->id, sd->account_id,
	    p->from_addr, p->from_name, p->subject, p->message_id,
	    s->mail_from, s->source, hex, dc->reason, dc->text, days },
	    id, sizeof(id));
	free(hex);
	if (rc != 1)
		return -1;
	res->status = "held";
	res->pending_id = strtoll(id, NULL, 10);
	return messageserver_notice_held(d, g, s, res->pending_id, dc->text);
}

/* archive - store, and queue the members' copies unless no-email. */
static int
archive(struct db *d, const struct ms_group *g, const struct ms_submission *s,
    const char *topic, const struct tagflags *tf, struct ms_result *res)
{
	struct ms_archived a;

	if (messageserver_archive_store(d, g->id, s, topic, tf->no_email,
	    &a) == -1)
		return -1;
	res->status = "archived";
	res->number = a.number;
	res->topic_id = a.topic_id;
	res->queued = a.queued;
	if (tf->no_email)
		res->reason = "no_email_hashtag";
	return 0;
}

/* pipeline - the checks and the action for s in g, given what ctx read. */
static int
pipeline(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, const struct ms_post_ctx *ctx,
    struct ms_result *res)
{
	const struct ms_parsed *p = s->p;
	struct sender sd = ctx->sd;
	struct tagflags tf;
	struct decision dc;
	char topic[32] = "", big[512];

	memset(res, 0, sizeof(*res));
	res->reason = "";
	if (ctx_duplicate(ctx, res))
		return 0;
	/* a member whose From differs from the envelope (an alias) */
	if (!sd.member && !sd.banned && s->mail_from[0] != '\0' &&
	    strcasecmp(s->mail_from, p->from_addr) != 0) {
		struct sender env;

		if (sender_load(d, g, s->mail_from, &env) == -1)
			return -1;
		if (env.member || env.banned)
			sd = env;
	}
	if (topic_load(d, g, p, topic, sizeof(topic), &tf) == -1)
		return -1;
	attachment_check(g, p, big, sizeof(big));
	if (!automation(g, s, &dc))
		dc = decide(g, s, &sd, topic[0] == '\0', &tf, big);
	else if (dc.v == HOLD && sd.member && (strcmp(sd.role, "owner") == 0 ||
	    strcmp(sd.role, "moderator") == 0))
		dc.v = ACCEPT;		/* staff may post automated mail */
	res->reason = dc.reason;
	switch (dc.v) {
	case DROP:
		res->status = "dropped";
		log_info("%s messageserver: <%s> from %s to %s@%s dropped: %s",
		    s->cid, p->message_id, p->from_addr, g->name, g->domain,
		    dc.text);
		return 0;
	case REJECT:
		res->status = "rejected";
		res->queued = 1;	/* the notice, unless rate-limited */
		log_info("%s messageserver: <%s> from %s to %s@%s rejected: "
		    "%s", s->cid, p->message_id, p->from_addr, g->name,
		    g->domain, dc.reason);
		return messageserver_notice_reject(d, g, s, dc.text);
	case HOLD:
		res->queued = 1;	/* the moderators' notice */
		log_info("%s messageserver: <%s> from %s to %s@%s held: %s",
		    s->cid, p->message_id, p->from_addr, g->name, g->domain,
		    dc.reason);
		return hold(d, g, s, &sd, &dc, res);
	case ACCEPT:
		break;
	}
	if (archive(d, g, s, topic, &tf, res) == -1)
		return -1;
	log_debug("%s messageserver: <%s> archived to %s@%s #%lld topic %lld",
	    s->cid, p->message_id, g->name, g->domain, res->number,
	    res->topic_id);
	return 0;
}

int
messageserver_post_group(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, struct ms_result *res)
{
	struct ms_post_ctx ctx;

	if (ctx_load(d, g, s, &ctx) == -1)
		return -1;
	return pipeline(d, g, s, &ctx, res);
}

int
messageserver_post_prepared(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, const struct ms_post_ctx *ctx,
    struct ms_result *res)
{
	return pipeline(d, g, s, ctx, res);
}

int
messageserver_post_release(struct db *d, const struct ms_group *g,
    const struct ms_submission *s, struct ms_result *res)
{
	const struct ms_parsed *p = s->p;
	struct tagflags tf;
	char topic[32] = "";
	int rc;

	memset(res, 0, sizeof(*res));
	res->reason = "";
	/* the poster sent it again and that copy got in: never twice */
	if ((rc = duplicate(d, g, p->message_id, 0, res)) != 0)
		return rc == 1 ? 0 : -1;
	if (topic_load(d, g, p, topic, sizeof(topic), &tf) == -1 ||
	    archive(d, g, s, topic, &tf, res) == -1)
		return -1;
	log_debug("%s messageserver: <%s> released to %s@%s #%lld topic "
	    "%lld", s->cid, p->message_id, g->name, g->domain, res->number,
	    res->topic_id);
	return 0;
}
