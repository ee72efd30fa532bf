/* SPDX-License-Identifier: MIT */
/*
 * messageserver_archive.c - store one parsed message in one group's
 * archive, inside a transaction the caller opened and will commit.
 *
 * The pipeline (messageserver_post.c) has already ruled out duplicates
 * (the unique (group, Message-ID) still guards against a race).
 * Threading: the newest message of the group named by In-Reply-To or
 * References gives the topic; else the most recent topic (within
 * MS_THREAD_DAYS) with the same subject key (Re:/Fwd:/[tag] prefixes
 * stripped, whitespace collapsed, lower-cased); else a new topic.  The
 * number comes from the messages_number trigger.  A new topic, the
 * message and its outbox row are one call of ms_archive_post
 * (sql/008_ingest.sql).  Attachments go to attachments (content in
 * bytea), #hashtags of the subject to hashtags and topic_hashtags.
 * Binary values travel as hex text ("\x...") since db.h passes text
 * parameters only.
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

char *
messageserver_bytea_hex(const void *data, size_t len)
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

int
messageserver_archive_topic(struct db *d, const char *gid,
    const struct ms_parsed *p, char *topic, size_t len)
{
	json_t *ids = json_array();
	char *js, *key;
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
	if (found != 0)
		return found;
	key = messageserver_mime_subject_key(p->subject);
	if (key[0] != '\0')
		found = db_query_value(d, "SELECT id FROM topics "
		    "WHERE group_id = $1 AND subject_key = lower($2) "
		    "AND archived_at IS NULL AND last_activity_at > now() - "
		    "interval '" MS_THREAD_DAYS "' "
		    "ORDER BY last_activity_at DESC LIMIT 1",
		    DB_PARAMS(gid, key), topic, len);
	free(key);
	return found;
}

size_t
messageserver_hashtags(const char *subject,
    char (*tags)[MS_HASHTAG_LEN + 1], size_t max)
{
	const char *s, *e;
	gunichar c;
	size_t n = 0;

	for (s = subject; *s != '\0' && n < max; s++) {
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
		snprintf(tags[n], MS_HASHTAG_LEN + 1, "%.*s",
		    (int)(e - s - 1), s + 1);
		n++;
		s = e - 1;
	}
	return n;
}

/* store_hashtags - #tags of the subject on the topic. */
static int
store_hashtags(struct db *d, const char *gid, const char *topic,
    const char *subject)
{
	char tags[MS_HASHTAGS_MAX][MS_HASHTAG_LEN + 1];
	size_t i, n = messageserver_hashtags(subject, tags, MS_HASHTAGS_MAX);

	for (i = 0; i < n; i++) {
		/* the WHERE keeps a tag the CHECK would refuse (say, a
		 * non-ASCII space) from failing the whole delivery */
		if (db_exec(d, "INSERT INTO hashtags (group_id, name) "
		    "SELECT $1, $2 WHERE $2 !~ '[[:space:]#]' "
		    "ON CONFLICT (group_id, lower(name)) DO NOTHING",
		    DB_PARAMS(gid, tags[i])) == -1)
			return -1;
		if (db_exec(d, "INSERT INTO topic_hashtags (topic_id, "
		    "hashtag_id) SELECT $1, id FROM hashtags WHERE "
		    "group_id = $2 AND lower(name) = lower($3) "
		    "ON CONFLICT DO NOTHING",
		    DB_PARAMS(topic, gid, tags[i])) == -1)
			return -1;
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
		hex = messageserver_bytea_hex(p->att[i].data, p->att[i].len);
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
    const struct ms_submission *s, const char *topic_in, int no_email,
    struct ms_archived *out)
{
	const struct ms_parsed *p = s->p;
	char topic[32], size[32];
	char *key, *hex, *refs;
	json_t *ja;
	PGresult *r;
	size_t i;

	memset(out, 0, sizeof(*out));
	ja = json_array();
	for (i = 0; i < p->nrefs; i++)
		json_array_append_new(ja, json_string(p->refs[i]));
	refs = json_dumps(ja, JSON_COMPACT);
	json_decref(ja);
	hex = messageserver_bytea_hex(s->raw, s->rawlen);
	snprintf(size, sizeof(size), "%zu", s->rawlen);
	key = topic_in != NULL && topic_in[0] != '\0' ? NULL :
	    messageserver_mime_subject_key(p->subject);
	/* topic, message and outbox row in one call (sql/008_ingest.sql) */
	r = db_query(d, "SELECT o_id, o_number, o_topic, o_queued FROM "
	    "ms_archive_post($1, $2, $3, $4, $5, "
	    "ARRAY(SELECT jsonb_array_elements_text($6::jsonb)), $7, $8, $9, "
	    "$10, $11, $12, $13, $14, $15, $16, $17, $18)", 18,
	    (const char *[]){ gid, key == NULL ? topic_in : NULL, key,
	    p->message_id, p->in_reply_to, refs, p->from_addr, p->from_name,
	    p->subject, p->sent_at, s->source, hex, size, p->body_text,
	    p->body_html, p->natt > 0 ? "true" : "false",
	    s->special ? "true" : "false", no_email ? "true" : "false" });
	free(key);
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
	out->id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	out->number = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	out->topic_id = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	out->queued = PQgetvalue(r, 0, 3)[0] == 't';
	strlcpy_chk(topic, PQgetvalue(r, 0, 2), sizeof(topic));
	if (store_attachments(d, PQgetvalue(r, 0, 0), p) == -1 ||
	    store_hashtags(d, gid, topic, p->subject) == -1) {
		PQclear(r);
		return -1;
	}
	PQclear(r);
	return 0;
}
