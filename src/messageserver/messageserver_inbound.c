/* SPDX-License-Identifier: MIT */
/*
 * messageserver_inbound.c - POST /v1/inbound: a message smtpd received.
 *
 * The body is decoded strictly (ms_inbound_decode: 400 on any fault), the
 * bytes parsed with GMime (422 when they are not a message), then in ONE
 * transaction every recipient is routed again and, for each group posted
 * to, the message archived (messageserver_archive.c).  The reply, 200
 * {"status": "archived"|"duplicate"|"accepted-unprocessed", "messages":
 * [...]}, is sent only after COMMIT; any database failure rolls everything
 * back and answers 503, which smtpd turns into 451 so the sender retries
 * and nothing is lost.  Owner, command, bounce and forward recipients are
 * accepted but not processed yet (logged at info).
 */
#include <stdio.h>
#include <string.h>

#include "api_proto.h"
#include "config.h"
#include "daemon.h"
#include "db.h"
#include "log.h"
#include "messageserver.h"
#include "xalloc.h"

/* seen - 1 if group@domain already has an entry in msgs. */
static int
seen(json_t *msgs, const struct ms_route *r)
{
	json_t *v;
	size_t i;

	json_array_foreach(msgs, i, v) {
		if (strcmp(json_string_value(json_object_get(v, F_MS_GROUP)),
		    r->group) == 0 && strcmp(json_string_value(
		    json_object_get(v, F_MS_DOMAIN)), r->domain) == 0)
			return 1;
	}
	return 0;
}

/* archive_all - route and archive inside an open transaction; -1 on a
 * database failure.  Counts go to *archived, *dups, *other. */
static int
archive_all(struct db *d, const struct ms_inbound *in,
    const struct ms_parsed *p, const char *cid, json_t *msgs,
    int *archived, int *dups, int *other)
{
	struct ms_route r;
	struct ms_archived a;
	char gid[32];
	PGresult *res;
	size_t i;

	for (i = 0; i < in->nrcpts; i++) {
		switch (messageserver_rcpt_resolve(d, in->rcpts[i], &r)) {
		case MS_RCPT_OK:
			break;
		case MS_RCPT_TEMPFAIL:
			return -1;
		default:
			log_info("%s messageserver: rcpt %s no longer routes; "
			    "skipped", cid, in->rcpts[i]);
			continue;
		}
		if (r.kind != MS_ROUTE_POST) {
			log_info("%s messageserver: %s route %s for %s: "
			    "accepted, not processed yet", cid, in->rcpts[i],
			    ms_route_name(r.kind), r.group);
			(*other)++;
			continue;
		}
		if (seen(msgs, &r))
			continue;
		res = db_query(d, "SELECT id FROM groups WHERE domain = $1 "
		    "AND name = $2", DB_PARAMS(r.domain, r.group));
		if (res == NULL)
			return -1;
		if (PQntuples(res) == 0) {
			PQclear(res);
			continue;
		}
		strlcpy_chk(gid, PQgetvalue(res, 0, 0), sizeof(gid));
		PQclear(res);
		if (messageserver_archive_store(d, gid, p, in->raw, in->rawlen,
		    &a) == -1)
			return -1;
		if (a.duplicate)
			(*dups)++;
		else
			(*archived)++;
		log_info("%s messageserver: <%s> %s %s@%s #%lld topic %lld",
		    cid, p->message_id, a.duplicate ? "duplicate in" :
		    "archived to", r.group, r.domain, a.number, a.topic_id);
		json_array_append_new(msgs, json_pack("{s:s, s:s, s:I, s:I, "
		    "s:s}", F_MS_GROUP, r.group, F_MS_DOMAIN, r.domain,
		    F_MS_NUMBER, (json_int_t)a.number, F_MS_TOPIC_ID,
		    (json_int_t)a.topic_id, F_MS_STATUS,
		    a.duplicate ? "duplicate" : "archived"));
	}
	return 0;
}

/* messageserver_inbound_handler - POST /v1/inbound. */
int
messageserver_inbound_handler(struct httpd_req *req)
{
	struct ms_inbound in;
	struct ms_parsed p;
	char err[256];
	const char *cid, *status;
	json_t *msgs;
	struct db *d;
	int archived = 0, dups = 0, other = 0, rc;

	if (ms_inbound_decode(httpd_req_json(req), &in, err,
	    sizeof(err)) == -1)
		return httpd_reply_error(req, 400, "%s", err);
	cid = in.cid ? in.cid : httpd_req_cid(req);
	if (messageserver_mime_parse(in.raw, in.rawlen, in.mail_from,
	    cfg.domain ? cfg.domain : "localhost", &p) == -1) {
		log_info("%s messageserver: from <%s>: not a MIME message",
		    cid, in.mail_from);
		ms_inbound_free(&in);
		return httpd_reply_error(req, 422, "not a parsable message");
	}
	if ((d = db_get(daemon_db)) == NULL) {
		messageserver_mime_free(&p);
		ms_inbound_free(&in);
		return httpd_reply_error(req, 503, "database unavailable");
	}
	msgs = json_array();
	rc = db_begin(d);
	if (rc == 0)
		rc = archive_all(d, &in, &p, cid, msgs, &archived, &dups,
		    &other);
	if (rc == 0 && archived + dups + other == 0) {
		db_rollback(d);
		db_put(daemon_db, d);
		json_decref(msgs);
		messageserver_mime_free(&p);
		ms_inbound_free(&in);
		return httpd_reply_error(req, 422, "no valid recipient");
	}
	if (rc == 0)
		rc = db_commit(d);
	if (rc != 0)
		db_rollback(d);
	db_put(daemon_db, d);
	messageserver_mime_free(&p);
	ms_inbound_free(&in);
	if (rc != 0) {
		json_decref(msgs);
		return httpd_reply_error(req, 503,
		    "database failure; not stored, try again later");
	}
	status = archived ? "archived" : dups ? "duplicate" :
	    "accepted-unprocessed";
	return httpd_reply_json(req, 200, json_pack("{s:s, s:o}",
	    F_MS_STATUS, status, F_MS_MESSAGES, msgs));
}
