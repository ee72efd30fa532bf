/* SPDX-License-Identifier: MIT */
/*
 * messageserver_inbound.c - POST /v1/inbound: a message smtpd received.
 *
 * The body is decoded strictly (ms_inbound_decode: 400 on any fault), the
 * bytes parsed with GMime (422 when they are not a message), then in ONE
 * transaction every recipient is routed again and, for each group posted
 * to, the message goes through the posting pipeline (messageserver_post.c:
 * archived, held, rejected with a notice, or dropped).  That transaction
 * is shared with the other requests waiting for the database (the group
 * commit, messageserver_commit.c); the request's connection is parked
 * meanwhile.  The reply, 200 {"status": overall, "messages": [per
 * group]}, is sent only after COMMIT; any database failure rolls
 * everything back and answers 503, which smtpd turns into 451 so the
 * sender retries and nothing is lost.  A rejection
 * is still a 200: the message was taken, and the poster hears why from a
 * notice (an SMTP-time refusal would reject the other groups' copies too).
 * Owner, command, bounce and forward recipients go to their handlers
 * (messageserver.h: struct ms_action) in the same transaction; their
 * outcomes are listed under "actions".
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api_proto.h"
#include "config.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "messageserver.h"
#include "metrics.h"
#include "xalloc.h"

/* seen - 1 if group@domain already has an entry in msgs. */
static int
seen(json_t *msgs, const char *group, const char *domain)
{
	json_t *v;
	size_t i;

	json_array_foreach(msgs, i, v) {
		if (strcmp(json_string_value(json_object_get(v, F_MS_GROUP)),
		    group) == 0 && strcmp(json_string_value(
		    json_object_get(v, F_MS_DOMAIN)), domain) == 0)
			return 1;
	}
	return 0;
}

json_t *
messageserver_result_json(const struct ms_group *g,
    const struct ms_result *res)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s}", F_MS_GROUP, g->name,
	    F_MS_DOMAIN, g->domain, F_MS_STATUS, res->status, F_MS_REASON,
	    res->reason);

	if (res->number > 0) {
		json_object_set_new(o, F_MS_NUMBER, json_integer(res->number));
		json_object_set_new(o, F_MS_TOPIC_ID,
		    json_integer(res->topic_id));
	}
	if (res->pending_id > 0)
		json_object_set_new(o, F_MS_PENDING_ID,
		    json_integer(res->pending_id));
	return o;
}

static struct metric *count_m[5];

/* The outcome counters, in messageserver_count's order. */
void
messageserver_count_init(void)
{
	static const char *const labels[] = { "result=\"archived\"",
	    "result=\"held\"", "result=\"duplicate\"",
	    "result=\"rejected\"", "result=\"dropped\"" };
	size_t k;

	for (k = 0; k < 5; k++)
		count_m[k] = metric_counter("messageserver_posts_total",
		    "posts by outcome, per group, committed", labels[k]);
}

void
messageserver_count(json_t *msgs)
{
	static const char *const names[] = { "archived", "held", "duplicate",
	    "rejected", "dropped", NULL };
	const char *st;
	json_t *v;
	size_t i, k;

	json_array_foreach(msgs, i, v) {
		st = json_string_value(json_object_get(v, F_MS_STATUS));
		for (k = 0; st != NULL && names[k] != NULL; k++)
			if (strcmp(st, names[k]) == 0)
				metric_add(count_m[k], 1);
	}
}

const char *
messageserver_overall(json_t *msgs, int other)
{
	static const char *const order[] = { "archived", "held", "duplicate",
	    "rejected", "dropped", NULL };
	const char *st;
	json_t *v;
	size_t i, k;

	for (k = 0; order[k] != NULL; k++)
		json_array_foreach(msgs, i, v) {
			st = json_string_value(json_object_get(v, F_MS_STATUS));
			if (st != NULL && strcmp(st, order[k]) == 0)
				return order[k];
		}
	return other ? "accepted" : NULL;
}

/* plain_group - if rcpt is group@cfg.domain without an extension, load
 * the group and what the pipeline reads about s in it, in one query: 1,
 * 0 when it is anything else, -1 on error. */
static int
plain_group(struct db *d, const char *rcpt, const struct ms_submission *s,
    struct ms_group *g, struct ms_post_ctx *ctx)
{
	char local[MS_ADDR_MAX + 1];
	const char *at = strrchr(rcpt, '@');
	size_t i;

	if (at == NULL || cfg.domain == NULL ||
	    strcasecmp(at + 1, cfg.domain) != 0 ||
	    (size_t)(at - rcpt) >= sizeof(local) ||
	    memchr(rcpt, '+', (size_t)(at - rcpt)) != NULL)
		return 0;
	for (i = 0; rcpt + i < at; i++)
		local[i] = (rcpt[i] >= 'A' && rcpt[i] <= 'Z') ?
		    (char)(rcpt[i] - 'A' + 'a') : rcpt[i];
	local[i] = '\0';
	return messageserver_post_prepare(d, cfg.domain, local, s, g, ctx);
}

/* act - a recipient that is not a post, through its handler; the outcome
 * is appended to acts.  -1 on a database failure. */
static int
act(struct db *d, const char *rcpt, const struct ms_route *r,
    const struct ms_submission *s, json_t *acts)
{
	struct ms_action a;
	int rc;

	memset(&a, 0, sizeof(a));
	switch (r->kind) {
	case MS_ROUTE_COMMAND:
		if (strcmp(r->command, "approve") == 0 ||
		    strcmp(r->command, "reject") == 0)
			rc = messageserver_moderate(d, r, s, &a);
		else
			rc = messageserver_command(d, r, s, &a);
		break;
	case MS_ROUTE_OWNER:
	case MS_ROUTE_FORWARD:
		rc = messageserver_forward(d, r, s, &a);
		break;
	case MS_ROUTE_BOUNCE:
		rc = messageserver_bounce_in(d, r, s, &a);
		break;
	default:
		a.status = "ignored";
		snprintf(a.reason, sizeof(a.reason), "route %s",
		    ms_route_name(r->kind));
		rc = 0;
		break;
	}
	if (rc == -1)
		return -1;
	if (a.status == NULL)
		a.status = "ignored";
	log_info("%s messageserver: %s (%s%s%s): %s%s%s", s->cid, rcpt,
	    ms_route_name(r->kind), r->command[0] ? " " : "", r->command,
	    a.status, a.reason[0] ? ": " : "", a.reason);
	json_array_append_new(acts, json_pack("{s:s, s:s, s:s, s:s, s:s}",
	    "rcpt", rcpt, F_MS_ROUTE, ms_route_name(r->kind), F_MS_COMMAND,
	    r->command, F_MS_STATUS, a.status, F_MS_REASON, a.reason));
	return 0;
}

/* post_all - route and run the pipeline inside an open transaction; -1
 * on a database failure.  Non-post routes go to act (outcomes in acts).
 * *kick is set when the fan-out may have work (an outbox row). */
static int
post_all(struct db *d, const struct ms_inbound *in,
    const struct ms_submission *s, json_t *msgs, json_t *acts, int *kick)
{
	struct ms_route r;
	struct ms_group g;
	struct ms_post_ctx ctx;
	struct ms_result res;
	size_t i;
	int rc;

	for (i = 0; i < in->nrcpts; i++) {
		/* the common case, group@our-domain: group, duplicate and
		 * poster in one query */
		if ((rc = plain_group(d, in->rcpts[i], s, &g, &ctx)) == -1)
			return -1;
		if (rc == 1) {
			if (seen(msgs, g.name, g.domain))
				continue;
			if (messageserver_post_prepared(d, &g, s, &ctx,
			    &res) == -1)
				return -1;
			*kick |= res.queued;
			json_array_append_new(msgs,
			    messageserver_result_json(&g, &res));
			continue;
		}
		switch (messageserver_rcpt_resolve(d, in->rcpts[i], &r)) {
		case MS_RCPT_OK:
			break;
		case MS_RCPT_TEMPFAIL:
			return -1;
		default:
			log_info("%s messageserver: rcpt %s no longer routes; "
			    "skipped", s->cid, in->rcpts[i]);
			continue;
		}
		if (r.kind != MS_ROUTE_POST) {
			if (act(d, in->rcpts[i], &r, s, acts) == -1)
				return -1;
			*kick = 1;	/* replies, forwards: the outbox */
			continue;
		}
		if (seen(msgs, r.group, r.domain))
			continue;
		if ((rc = messageserver_group_load(d, r.domain, r.group,
		    &g)) == -1)
			return -1;
		if (rc == 0)
			continue;
		if (messageserver_post_group(d, &g, s, &res) == -1)
			return -1;
		*kick |= res.queued;
		json_array_append_new(msgs, messageserver_result_json(&g,
		    &res));
	}
	return 0;
}

/* One /v1/inbound request waiting for the group commit. */
struct inbound_job {
	struct httpd_defer	*defer;
	struct ms_inbound	 in;
	struct ms_parsed	 p;
	struct ms_submission	 sub;
	char			 cid[40];
	json_t			*msgs, *acts;	/* built by run */
	int			 kick;		/* the fan-out has work */
};

/* inbound_run - route and post inside the shared transaction. */
static int
inbound_run(struct db *d, void *arg)
{
	struct inbound_job *j = arg;

	return post_all(d, &j->in, &j->sub, j->msgs, j->acts, &j->kick);
}

/* inbound_reset - the transaction was rolled back: forget its outcomes. */
static void
inbound_reset(void *arg)
{
	struct inbound_job *j = arg;

	json_array_clear(j->msgs);
	json_array_clear(j->acts);
	j->kick = 0;
}

/* inbound_done - answer after the COMMIT, then free the job. */
static void
inbound_done(void *arg, int rc)
{
	struct inbound_job *j = arg;
	const char *status;
	json_t *reply;
	unsigned code;

	if (rc != 0) {
		code = 503;
		log_err("%s messageserver: database failure; not stored, "
		    "try again later", j->cid);
		reply = json_pack("{s:s}", F_ERROR,
		    "database failure; not stored, try again later");
	} else if (json_array_size(j->msgs) == 0 &&
	    json_array_size(j->acts) == 0) {
		/* nothing routed, so the transaction holds nothing of it */
		code = 422;
		reply = json_pack("{s:s}", F_ERROR, "no valid recipient");
	} else {
		code = 200;
		/* a kick makes every fan-out thread look at the outbox:
		 * only when there is something to find */
		if (j->kick)
			messageserver_fanout_kick();
		messageserver_count(j->msgs);
		status = messageserver_overall(j->msgs,
		    json_array_size(j->acts) > 0);
		reply = json_pack("{s:s, s:O, s:O}", F_MS_STATUS, status,
		    F_MS_MESSAGES, j->msgs, "actions", j->acts);
	}
	httpd_defer_reply_json(j->defer, code, reply);
	json_decref(j->msgs);
	json_decref(j->acts);
	messageserver_mime_free(&j->p);
	ms_inbound_free(&j->in);
	free(j);
}

static const struct ms_commit_ops inbound_ops = {
	inbound_run, inbound_reset, inbound_done,
};

/* messageserver_inbound_handler - POST /v1/inbound: decode and parse on
 * the HTTP thread, then the transaction through the group commit. */
int
messageserver_inbound_handler(struct httpd_req *req)
{
	struct inbound_job *j = xcalloc(1, sizeof(*j));
	char err[256];

	if (ms_inbound_decode(httpd_req_json(req), &j->in, err,
	    sizeof(err)) == -1) {
		free(j);
		return httpd_reply_error(req, 400, "%s", err);
	}
	strlcpy_chk(j->cid, j->in.cid ? j->in.cid : httpd_req_cid(req),
	    sizeof(j->cid));
	if (messageserver_mime_parse(j->in.raw, j->in.rawlen,
	    j->in.mail_from, cfg.domain ? cfg.domain : "localhost",
	    &j->p) == -1) {
		log_info("%s messageserver: from <%s>: not a MIME message",
		    j->cid, j->in.mail_from);
		ms_inbound_free(&j->in);
		free(j);
		return httpd_reply_error(req, 422, "not a parsable message");
	}
	j->sub.source = "email";
	j->sub.mail_from = j->in.mail_from;
	j->sub.raw = j->in.raw;
	j->sub.rawlen = j->in.rawlen;
	j->sub.p = &j->p;
	j->sub.cid = j->cid;
	j->msgs = json_array();
	j->acts = json_array();
	if ((j->defer = httpd_defer(req)) == NULL) {
		inbound_done(j, -1);	/* cannot happen: not replied yet */
		return 0;
	}
	messageserver_commit_submit(&inbound_ops, j);
	return 0;
}
