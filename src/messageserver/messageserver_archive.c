/* SPDX-License-Identifier: MIT */
/*
 * messageserver_archive.c - store one parsed message in one group's
 * archive, inside a transaction the caller opened and will commit.
 *
 * A message whose Message-ID the group already has is a duplicate and
 * changes nothing.  Threading: the newest message of the group named by
 * In-Reply-To or References gives the topic; else the most recent topic
 * (within MS_THREAD_DAYS) with the same subject key (Re:/Fwd:/[tag]
 * prefixes stripped, whitespace collapsed, lower-cased); else a new topic.
 * The number comes from the messages_number trigger.  Attachments go to
 * attachments (content in bytea), #hashtags of the subject to hashtags and
 * topic_hashtags.  Binary values travel as hex text ("\x...") since db.h
 * passes text parameters only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "db.h"
#include "log.h"
#include "messageserver.h"
#include "strbuf.h"
#include "xalloc.h"

/* bytea_hex - "\x" + hex of data (returns allocated, caller frees). */
static char *
bytea_hex(const void *data, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *b = data;
	char *out = xmalloc(2 * len + 3), *o = out;
	size_t i;

	*o++ = '\\';
	*o++ = 'x';
	for (i = 0; i < len; i++) {
		*o++ = hex[b[i] >> 4];
		*o++ = hex[b[i] & 15];
	}
	*o = '\0';
	return out;
}

/* find_topic - the topic of the parent or of a same-subject topic into
 * topic; 1 found, 0 not, -1 error. */
static int
find_topic(struct db *d, const char *gid, const struct ms_parsed *p,
    const char *key, char *topic, size_t len)
{
	json_t *ids = json_array();
	char *js;
	size_t i;
	int found = 0;

	for (i = 0; i < p->nrefs; i++)
		json_array_append_new(ids, json_string(p->refs[i]));
	if (p->in_reply_to != NULL)
		json_array_append_new(ids, json_string(p->in_reply_to));
	if (json_array_size(ids) > 0) {
		js = json_dumps(ids, JSON_COMPACT);
		found = db_query_value(d, "SELECT topic_id FROM messages "
		    "WHERE group_id = $1 AND message_id IN "
		    "(SELECT jsonb_array_elements_text($2::jsonb)) "
		    "ORDER BY number DESC LIMIT 1", DB_PARAMS(gid, js), topic,
		    len);
		free(js);
	}
	json_decref(ids);
	if (found != 0 || key[0] == '\0')
		return found;
	return db_query_value(d, "SELECT id FROM topics WHERE group_id = $1 "
	    "AND subject_key = lower($2) AND archived_at IS NULL "
	    "AND last_activity_at > now() - interval '" MS_THREAD_DAYS "' "
	    "ORDER BY last_activity_at DESC LIMIT 1", DB_PARAMS(gid, key),
	    topic, len);
}

/* store_hashtags - #tags of the subject on the topic. */
static int
store_hashtags(struct db *d, const char *gid, const char *topic,
    const char *subject)
{
	char tag[MS_HASHTAG_LEN + 1];
	const char *s, *e;
	gunichar c;
	int n = 0;

	for (s = subject; *s != '\0' && n < MS_HASHTAGS_MAX; s++) {
		if (*s != '#' || (s > subject && s[-1] != ' ' &&
		    s[-1] != '\t' && s[-1] != '(' && s[-1] != '['))
			continue;
		/* letters and digits of any script, '_' and '-' */
		for (e = s + 1; *e != '\0';
		    e += g_utf8_skip[(unsigned char)*e]) {
			c = g_utf8_get_char(e);
			if (!g_unichar_isalnum(c) && c != '_' && c != '-')
				break;
		}
		if (e == s + 1 || (size_t)(e - s - 1) > MS_HASHTAG_LEN)
			continue;
		snprintf(tag, sizeof(tag), "%.*s", (int)(e - s - 1), s + 1);
		n++;
		/* the WHERE keeps a tag the CHECK would refuse (say, a
		 * non-ASCII space) from failing the whole delivery */
		if (db_exec(d, "INSERT INTO hashtags (group_id, name) "
		    "SELECT $1, $2 WHERE $2 !~ '[[:space:]#]' "
		    "ON CONFLICT (group_id, lower(name)) DO NOTHING",
		    DB_PARAMS(gid, tag)) == -1)
			return -1;
		if (db_exec(d, "INSERT INTO topic_hashtags (topic_id, "
		    "hashtag_id) SELECT $1, id FROM hashtags WHERE "
		    "group_id = $2 AND lower(name) = lower($3) "
		    "ON CONFLICT DO NOTHING", DB_PARAMS(topic, gid, tag)) == -1)
			return -1;
		s = e - 1;
	}
	return 0;
}

/* store_attachments - the attachments of message mid. */
static int
store_attachments(struct db *d, const char *mid, const struct ms_parsed *p)
{
	char pos[32], size[32];
	char *hex;
	size_t i;
	long rc;

	for (i = 0; i < p->natt; i++) {
		snprintf(pos, sizeof(pos), "%zu", i + 1);
		snprintf(size, sizeof(size), "%zu", p->att[i].len);
		hex = bytea_hex(p->att[i].data, p->att[i].len);
		rc = db_exec(d, "INSERT INTO attachments (message_id, "
		    "position, filename, content_type, disposition, "
		    "content_id, size, sha256, content) VALUES ($1, $2, $3, "
		    "$4, $5, $6, $7, $8, $9::bytea)", 9, (const char *[]){
		    mid, pos, p->att[i].filename, p->att[i].content_type,
		    p->att[i].inline_disp ? "inline" : "attachment",
		    p->att[i].content_id, size, p->att[i].sha256, hex });
		free(hex);
		if (rc == -1)
			return -1;
	}
	return 0;
}

int
messageserver_archive_store(struct db *d, const char *gid,
    const struct ms_parsed *p, const void *raw, size_t rawlen,
    struct ms_archived *out)
{
	char topic[32], size[32];
	char *key, *hex, *refs;
	json_t *ja;
	PGresult *r;
	size_t i;
	int found;

	memset(out, 0, sizeof(*out));
	r = db_query(d, "SELECT number, topic_id FROM messages "
	    "WHERE group_id = $1 AND message_id = $2",
	    DB_PARAMS(gid, p->message_id));
	if (r == NULL)
		return -1;
	if (PQntuples(r) > 0) {
		out->duplicate = 1;
		out->number = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		out->topic_id = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
		PQclear(r);
		return 0;
	}
	PQclear(r);

	key = messageserver_mime_subject_key(p->subject);
	found = find_topic(d, gid, p, key, topic, sizeof(topic));
	if (found == 0)
		found = db_query_value(d, "INSERT INTO topics (group_id, "
		    "subject, subject_key, started_by) "
		    "VALUES ($1, $2, lower($3), "
		    "(SELECT id FROM accounts WHERE lower(email) = lower($4))) "
		    "RETURNING id", DB_PARAMS(gid, key, key, p->from_addr),
		    topic, sizeof(topic));
	free(key);
	if (found != 1)
		return -1;

	ja = json_array();
	for (i = 0; i < p->nrefs; i++)
		json_array_append_new(ja, json_string(p->refs[i]));
	refs = json_dumps(ja, JSON_COMPACT);
	json_decref(ja);
	hex = bytea_hex(raw, rawlen);
	snprintf(size, sizeof(size), "%zu", rawlen);
	r = db_query(d, "INSERT INTO messages (group_id, topic_id, "
	    "message_id, in_reply_to, refs, author_id, from_address, "
	    "from_name, subject, sent_at, source, raw, size, body_text, "
	    "body_html, has_attachments) VALUES ($1, $2, $3, $4, "
	    "ARRAY(SELECT jsonb_array_elements_text($5::jsonb)), "
	    "(SELECT id FROM accounts WHERE lower(email) = lower($6)), "
	    "$6, $7, $8, $9::timestamptz, 'email', $10::bytea, $11, $12, "
	    "$13, $14) ON CONFLICT (group_id, message_id) DO NOTHING "
	    "RETURNING id, number", 14, (const char *[]){ gid, topic,
	    p->message_id, p->in_reply_to, refs, p->from_addr, p->from_name,
	    p->subject, p->sent_at, hex, size, p->body_text, p->body_html,
	    p->natt > 0 ? "true" : "false" });
	free(hex);
	free(refs);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		/* a concurrent delivery won; the caller rolls back */
		PQclear(r);
		log_warnx("messageserver: <%s> raced into group %s",
		    p->message_id, gid);
		return -1;
	}
	out->number = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	out->topic_id = strtoll(topic, NULL, 10);
	if (store_attachments(d, PQgetvalue(r, 0, 0), p) == -1 ||
	    store_hashtags(d, gid, topic, p->subject) == -1) {
		PQclear(r);
		return -1;
	}
	PQclear(r);
	return 0;
}
