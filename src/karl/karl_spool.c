/* SPDX-License-Identifier: MIT */
/*
 * karl_spool.c - karl's on-disk spool (leveldb).
 *
 * Keys (job ids cannot contain '/', so each prefix is unambiguous):
 *	job/<id>			JSON job record: kind, footer, sender,
 *					sign_domain, batches held, last,
 *					created, receivers, message_len
 *	msg/<id>			the message bytes, once per job
 *	batch/<id>/<batch:08>		JSON {"receivers": n, "received": t}
 *	rcpt/<id>/<batch:08>/<i:04>	JSON {to, verp, data, state, attempts,
 *					next, reported, code, diag}
 *	done/<id>			tombstone of a delivered job: counts
 * The fixed-width numbers make leveldb's byte order the batch order.  A
 * batch is one WriteBatch written with sync=true before karl answers 202,
 * so after a crash a batch is either wholly there or not at all.  Batches
 * of one job are checked and written under that job's lock (a stripe of
 * a fixed set), which makes the check "marker absent, previous batch
 * held" and the write one step.  A job is deleted only when it is
 * complete and every receiver is sent or failed and reported; its
 * tombstone answers late retries of its batches as duplicates and its
 * status for KARL_TOMBSTONE_TTL.  leveldb allows one process
 * per database, so each karl instance owns its own directory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <leveldb/c.h>

#include "fsutil.h"
#include "karl.h"
#include "log.h"
#include "xalloc.h"

#define JOB_PREFIX	"job/"
#define MSG_PREFIX	"msg/"
#define BATCH_PREFIX	"batch/"
#define RCPT_PREFIX	"rcpt/"
#define KEY_MAX		(16 + KARL_JOB_MAX + 32)
#define LOCK_STRIPES	64

/* job record fields (spool only; the API names are in karl_clnt.h) */
#define J_CREATED	"created"
#define J_RECEIVED	"received"
#define J_MESSAGE_LEN	"message_len"
#define J_NSENT		"n_sent"	/* receivers sent */
#define J_NFAILED	"n_failed"	/* receivers failed and reported */
#define J_DONE		"done"		/* tombstone: when the job ended */
#define DONE_PREFIX	"done/"
#define SENT_MARK	"\"" F_KARL_STATE "\":\"" F_KARL_SENT "\""

static leveldb_t *spool_db;
static leveldb_options_t *spool_opts;
static leveldb_readoptions_t *spool_ropts;
static leveldb_writeoptions_t *spool_wopts;
/* Outcomes are written without fsync: the write reaches the kernel, so
 * it survives karl's own crash or kill -9; only an operating-system crash
 * can lose the last outcomes, and that sends those receivers again,
 * never loses one.  Intake (the 202) is always synced. */
static leveldb_writeoptions_t *spool_wopts_outcome;
static pthread_mutex_t spool_locks[LOCK_STRIPES];

int
karl_spool_open(const char *dir)
{
	char *err = NULL;
	size_t i;

	if (fsutil_mkdirs(dir, 0750) == -1) {
		log_warn("karl: cannot create spool %s", dir);
		return -1;
	}
	spool_opts = leveldb_options_create();
	leveldb_options_set_create_if_missing(spool_opts, 1);
	spool_db = leveldb_open(spool_opts, dir, &err);
	if (err != NULL) {
		log_err("karl: cannot open spool %s: %s", dir, err);
		leveldb_free(err);
		leveldb_options_destroy(spool_opts);
		spool_opts = NULL;
		return -1;
	}
	spool_ropts = leveldb_readoptions_create();
	leveldb_readoptions_set_fill_cache(spool_ropts, 0);
	spool_wopts = leveldb_writeoptions_create();
	leveldb_writeoptions_set_sync(spool_wopts, 1);
	spool_wopts_outcome = leveldb_writeoptions_create();
	leveldb_writeoptions_set_sync(spool_wopts_outcome, 0);
	for (i = 0; i < LOCK_STRIPES; i++)
		pthread_mutex_init(&spool_locks[i], NULL);
	return 0;
}

void
karl_spool_close(void)
{
	if (spool_db != NULL)
		leveldb_close(spool_db);
	if (spool_ropts != NULL)
		leveldb_readoptions_destroy(spool_ropts);
	if (spool_wopts != NULL)
		leveldb_writeoptions_destroy(spool_wopts);
	if (spool_wopts_outcome != NULL)
		leveldb_writeoptions_destroy(spool_wopts_outcome);
	spool_wopts_outcome = NULL;
	if (spool_opts != NULL)
		leveldb_options_destroy(spool_opts);
	spool_db = NULL;
	spool_ropts = NULL;
	spool_wopts = NULL;
	spool_opts = NULL;
}

int64_t
karl_spool_jobs(void)
{
	leveldb_iterator_t *it;
	int64_t n = 0;

	if (spool_db == NULL)
		return 0;
	it = leveldb_create_iterator(spool_db, spool_ropts);
	for (leveldb_iter_seek(it, JOB_PREFIX, strlen(JOB_PREFIX));
	    leveldb_iter_valid(it); leveldb_iter_next(it)) {
		size_t klen;
		const char *k = leveldb_iter_key(it, &klen);

		if (klen < strlen(JOB_PREFIX) ||
		    memcmp(k, JOB_PREFIX, strlen(JOB_PREFIX)) != 0)
			break;
		n++;
	}
	leveldb_iter_destroy(it);
	return n;
}

/* spool_lock - the lock of job id's stripe (FNV-1a of the id). */
static pthread_mutex_t *
spool_lock(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id != '\0'; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return &spool_locks[h % LOCK_STRIPES];
}

/* spool_get - the value of key (allocated, NUL appended, caller frees)
 * under ropts, or NULL when absent; -1 in *rc on error. */
static char *
spool_get(const leveldb_readoptions_t *ropts, const char *key, size_t *lenp,
    int *rc)
{
	char *err = NULL, *v, *out;
	size_t len = 0;

	*rc = 0;
	v = leveldb_get(spool_db, ropts, key, strlen(key), &len, &err);
	if (err != NULL) {
		log_err("karl: spool read %s: %s", key, err);
		leveldb_free(err);
		*rc = -1;
		return NULL;
	}
	if (v == NULL)
		return NULL;
	out = xmalloc(len + 1);
	memcpy(out, v, len);
	out[len] = '\0';
	leveldb_free(v);
	if (lenp != NULL)
		*lenp = len;
	return out;
}

/* spool_get_json - the JSON object at key (caller decrefs); NULL when
 * absent or on error (*rc -1; a record that does not parse is one). */
static json_t *
spool_get_json(const leveldb_readoptions_t *ropts, const char *key, int *rc)
{
	json_error_t je;
	json_t *j;
	size_t len;
	char *v;

	if ((v = spool_get(ropts, key, &len, rc)) == NULL)
		return NULL;
	j = json_loadb(v, len, 0, &je);
	free(v);
	if (!json_is_object(j)) {
		log_err("karl: spool record %s is corrupt: %s", key, je.text);
		json_decref(j);
		*rc = -1;
		return NULL;
	}
	return j;
}

/* batch_put_json - add key = compact j to the write batch (j borrowed). */
static void
batch_put_json(leveldb_writebatch_t *wb, const char *key, const json_t *j)
{
	char *v = json_dumps(j, JSON_COMPACT);

	if (v == NULL)
		panic("karl: cannot encode spool record %s", key);
	leveldb_writebatch_put(wb, key, strlen(key), v, strlen(v));
	free(v);
}

/* job_record - the record of a new job from its batch 0. */
static json_t *
job_record(const struct karl_send *s, time_t now)
{
	json_t *j, *footer;

	j = json_pack("{s:s, s:{s:s, s:s}, s:s, s:I, s:b, s:I, s:I, s:I}",
	    F_KARL_KIND, s->kind, F_KARL_SENDER, F_KARL_LOCAL,
	    s->sender_local, F_KARL_DOMAIN, s->sender_domain,
	    F_KARL_SIGN_DOMAIN, s->sign_domain, F_KARL_BATCHES, (json_int_t)0,
	    F_KARL_LAST, 0, J_CREATED, (json_int_t)now, F_KARL_RECEIVERS,
	    (json_int_t)0, J_MESSAGE_LEN, (json_int_t)s->message_len);
	if (j == NULL)
		panic("karl: cannot build the job record of %s", s->job);
	if (s->footer_text != NULL || s->footer_html != NULL) {
		footer = json_object();
		if (s->footer_text != NULL)
			json_object_set_new(footer, F_KARL_TEXT,
			    json_string(s->footer_text));
		if (s->footer_html != NULL)
			json_object_set_new(footer, F_KARL_HTML,
			    json_string(s->footer_html));
		json_object_set_new(j, F_KARL_FOOTER, footer);
	}
	return j;
}

/* record_int - an integer field of a spool record (0 if missing). */
static long long
record_int(const json_t *j, const char *key)
{
	return json_integer_value(json_object_get(j, key));
}

/* check_order - may batch s follow the job record rec (NULL: no job)?
 * 0, or KARL_SPOOL_CONFLICT / KARL_SPOOL_ERROR with a reason in err. */
static int
check_order(const struct karl_send *s, const json_t *rec, char *err,
    size_t errlen)
{
	const char *kind;
	long long held;

	if (s->batch == 0) {
		if (rec == NULL)
			return 0;
		/* batch 0 and its marker are written together */
		log_err("karl: job %s has a record but no batch 0", s->job);
		return KARL_SPOOL_ERROR;
	}
	if (rec == NULL) {
		snprintf(err, errlen, "batch %lld of job %s before batch 0",
		    s->batch, s->job);
		return KARL_SPOOL_CONFLICT;
	}
	held = record_int(rec, F_KARL_BATCHES);
	if (json_is_true(json_object_get(rec, F_KARL_LAST))) {
		snprintf(err, errlen, "job %s ended with batch %lld",
		    s->job, held - 1);
		return KARL_SPOOL_CONFLICT;
	}
	/* batches 0..held-1 are held and batch s->batch is not */
	if (s->batch != held) {
		snprintf(err, errlen, "batch %lld of job %s before batch %lld",
		    s->batch, s->job, held);
		return KARL_SPOOL_CONFLICT;
	}
	kind = json_string_value(json_object_get(rec, F_KARL_KIND));
	if (s->kind != NULL && (kind == NULL || strcmp(kind, s->kind) != 0)) {
		snprintf(err, errlen, "job %s is of kind %s, not %s", s->job,
		    kind ? kind : "?", s->kind);
		return KARL_SPOOL_CONFLICT;
	}
	return 0;
}

/* add_receivers - one rcpt/ key per receiver of s into wb. */
static void
add_receivers(leveldb_writebatch_t *wb, const struct karl_send *s)
{
	char key[KEY_MAX];
	json_t *r, *rec, *v;
	size_t i;

	json_array_foreach(s->receivers, i, r) {
		rec = json_object();
		json_object_set(rec, F_KARL_TO, json_object_get(r, F_KARL_TO));
		if ((v = json_object_get(r, F_KARL_VERP)) != NULL)
			json_object_set(rec, F_KARL_VERP, v);
		if ((v = json_object_get(r, F_KARL_DATA)) != NULL)
			json_object_set(rec, F_KARL_DATA, v);
		json_object_set_new(rec, F_KARL_STATE, json_string(F_KARL_QUEUED));
		json_object_set_new(rec, R_ATTEMPTS, json_integer(0));
		snprintf(key, sizeof(key), RCPT_PREFIX "%s/%08lld/%04zu",
		    s->job, s->batch, i);
		batch_put_json(wb, key, rec);
		json_decref(rec);
	}
}

/* spool_put_locked - karl_spool_put under the job's lock. */
static int
spool_put_locked(const struct karl_send *s, time_t now, size_t *nrcpt,
    char *err, size_t errlen)
{
	char key[KEY_MAX], *lerr = NULL;
	leveldb_writebatch_t *wb;
	json_t *marker, *rec;
	size_t n = json_array_size(s->receivers);
	int rc;

	/* a delivered job: its batches are duplicates, later ones too late */
	snprintf(key, sizeof(key), DONE_PREFIX "%s", s->job);
	if ((rec = spool_get_json(spool_ropts, key, &rc)) != NULL) {
		long long held = record_int(rec, F_KARL_BATCHES);

		json_decref(rec);
		if (s->batch < held)
			return KARL_SPOOL_DUPLICATE;
		snprintf(err, errlen, "job %s ended with batch %lld and is "
		    "delivered", s->job, held - 1);
		return KARL_SPOOL_CONFLICT;
	}
	if (rc == -1)
		return KARL_SPOOL_ERROR;
	snprintf(key, sizeof(key), BATCH_PREFIX "%s/%08lld", s->job,
	    s->batch);
	if ((marker = spool_get_json(spool_ropts, key, &rc)) != NULL) {
		*nrcpt = (size_t)record_int(marker, F_KARL_RECEIVERS);
		json_decref(marker);
		return KARL_SPOOL_DUPLICATE;
	}
	if (rc == -1)
		return KARL_SPOOL_ERROR;
	snprintf(key, sizeof(key), JOB_PREFIX "%s", s->job);
	rec = spool_get_json(spool_ropts, key, &rc);
	if (rc == -1)
		return KARL_SPOOL_ERROR;
	if ((rc = check_order(s, rec, err, errlen)) != 0) {
		json_decref(rec);
		return rc;
	}

	wb = leveldb_writebatch_create();
	if (rec == NULL) {
		rec = job_record(s, now);
		snprintf(key, sizeof(key), MSG_PREFIX "%s", s->job);
		leveldb_writebatch_put(wb, key, strlen(key),
		    (const char *)s->message, s->message_len);
	}
	json_object_set_new(rec, F_KARL_BATCHES, json_integer(s->batch + 1));
	json_object_set_new(rec, F_KARL_LAST, json_boolean(s->last));
	json_object_set_new(rec, F_KARL_RECEIVERS, json_integer(
	    record_int(rec, F_KARL_RECEIVERS) + (json_int_t)n));
	snprintf(key, sizeof(key), JOB_PREFIX "%s", s->job);
	batch_put_json(wb, key, rec);
	json_decref(rec);

	marker = json_pack("{s:I, s:I}", F_KARL_RECEIVERS, (json_int_t)n,
	    J_RECEIVED, (json_int_t)now);
	snprintf(key, sizeof(key), BATCH_PREFIX "%s/%08lld", s->job,
	    s->batch);
	batch_put_json(wb, key, marker);
	json_decref(marker);
	add_receivers(wb, s);

	leveldb_write(spool_db, spool_wopts, wb, &lerr);
	leveldb_writebatch_destroy(wb);
	if (lerr != NULL) {
		log_err("karl: spool write of job %s batch %lld: %s", s->job,
		    s->batch, lerr);
		leveldb_free(lerr);
		return KARL_SPOOL_ERROR;
	}
	*nrcpt = n;
	return KARL_SPOOL_STORED;
}

int
karl_spool_put(const struct karl_send *s, time_t now, size_t *nrcpt,
    char *err, size_t errlen)
{
	pthread_mutex_t *m = spool_lock(s->job);
	int rc;

	*nrcpt = 0;
	if (spool_db == NULL)
		return KARL_SPOOL_ERROR;
	pthread_mutex_lock(m);
	rc = spool_put_locked(s, now, nrcpt, err, errlen);
	pthread_mutex_unlock(m);
	return rc;
}

/* rcpt_fn - one receiver record of a walk; non-zero stops it. */
typedef int (*rcpt_fn)(void *ctx, json_t *rec);

/* rcpt_walk - call fn for each receiver of job id in key order, under
 * ropts; 0 (also when fn stopped it) or -1. */
static int
rcpt_walk(const leveldb_readoptions_t *ropts, const char *id, rcpt_fn fn,
    void *ctx)
{
	leveldb_iterator_t *it;
	char prefix[KEY_MAX], *err = NULL;
	size_t plen, klen, vlen;
	const char *k, *v;
	json_t *rec;
	int rc = 0;

	plen = (size_t)snprintf(prefix, sizeof(prefix), RCPT_PREFIX "%s/", id);
	it = leveldb_create_iterator(spool_db, ropts);
	for (leveldb_iter_seek(it, prefix, plen); leveldb_iter_valid(it);
	    leveldb_iter_next(it)) {
		k = leveldb_iter_key(it, &klen);
		if (klen < plen || memcmp(k, prefix, plen) != 0)
			break;
		v = leveldb_iter_value(it, &vlen);
		if ((rec = json_loadb(v, vlen, 0, NULL)) == NULL) {
			log_err("karl: spool record %.*s is corrupt",
			    (int)klen, k);
			rc = -1;
			break;
		}
		rc = fn(ctx, rec);
		json_decref(rec);
		if (rc != 0) {
			rc = 0;
			break;
		}
	}
	leveldb_iter_get_error(it, &err);
	if (err != NULL) {
		log_err("karl: spool walk of job %s: %s", id, err);
		leveldb_free(err);
		rc = -1;
	}
	leveldb_iter_destroy(it);
	return rc;
}

/* count_state - rcpt_fn adding one receiver to a karl_job_info. */
static int
count_state(void *ctx, json_t *rec)
{
	struct karl_job_info *info = ctx;
	const char *st = json_string_value(json_object_get(rec, F_KARL_STATE));

	if (st == NULL)
		st = "";
	if (strcmp(st, F_KARL_QUEUED) == 0)
		info->queued++;
	else if (strcmp(st, F_KARL_SENT) == 0)
		info->sent++;
	else if (strcmp(st, F_KARL_DEFERRED) == 0)
		info->deferred++;
	else if (strcmp(st, F_KARL_FAILED) == 0)
		info->failed++;
	return 0;
}

/* with_snapshot - read options seeing one consistent state of the spool
 * (free with end_snapshot). */
static leveldb_readoptions_t *
with_snapshot(const leveldb_snapshot_t **snap)
{
	leveldb_readoptions_t *ro = leveldb_readoptions_create();

	leveldb_readoptions_set_fill_cache(ro, 0);
	*snap = leveldb_create_snapshot(spool_db);
	leveldb_readoptions_set_snapshot(ro, *snap);
	return ro;
}

static void
end_snapshot(leveldb_readoptions_t *ro, const leveldb_snapshot_t *snap)
{
	leveldb_readoptions_destroy(ro);
	leveldb_release_snapshot(spool_db, snap);
}

/* tombstone_info - a delivered job's counts from its tombstone: 0, 1 if
 * there is none, -1. */
static int
tombstone_info(const leveldb_readoptions_t *ro, const char *id,
    struct karl_job_info *info)
{
	char key[KEY_MAX];
	const char *kind;
	json_t *t;
	int rc;

	snprintf(key, sizeof(key), DONE_PREFIX "%s", id);
	if ((t = spool_get_json(ro, key, &rc)) == NULL)
		return rc == -1 ? -1 : 1;
	kind = json_string_value(json_object_get(t, F_KARL_KIND));
	strlcpy_chk(info->kind, kind ? kind : "", sizeof(info->kind));
	info->batches = record_int(t, F_KARL_BATCHES);
	info->complete = 1;
	info->receivers = record_int(t, F_KARL_RECEIVERS);
	info->sent = record_int(t, F_KARL_SENT);
	info->failed = record_int(t, F_KARL_FAILED);
	json_decref(t);
	return 0;
}

int
karl_spool_job_info(const char *id, struct karl_job_info *info)
{
	const leveldb_snapshot_t *snap;
	leveldb_readoptions_t *ro;
	char key[KEY_MAX];
	const char *kind;
	json_t *rec;
	int rc;

	memset(info, 0, sizeof(*info));
	if (spool_db == NULL)
		return -1;
	ro = with_snapshot(&snap);
	snprintf(key, sizeof(key), JOB_PREFIX "%s", id);
	if ((rec = spool_get_json(ro, key, &rc)) == NULL) {
		if (rc == 0)
			rc = tombstone_info(ro, id, info);
		end_snapshot(ro, snap);
		return rc;
	}
	kind = json_string_value(json_object_get(rec, F_KARL_KIND));
	strlcpy_chk(info->kind, kind ? kind : "", sizeof(info->kind));
	info->batches = record_int(rec, F_KARL_BATCHES);
	info->complete = json_is_true(json_object_get(rec, F_KARL_LAST));
	info->receivers = record_int(rec, F_KARL_RECEIVERS);
	json_decref(rec);
	rc = rcpt_walk(ro, id, count_state, info);
	end_snapshot(ro, snap);
	return rc;
}

struct list_ctx {
	json_t	*arr;
	size_t	 max;
	int	*more;
};

/* list_one - rcpt_fn appending {to, state}; stops after max. */
static int
list_one(void *ctx, json_t *rec)
{
	struct list_ctx *l = ctx;

	if (json_array_size(l->arr) >= l->max) {
		*l->more = 1;
		return 1;
	}
	json_array_append_new(l->arr, json_pack("{s:O, s:O, s:O*, s:O*}",
	    F_KARL_TO, json_object_get(rec, F_KARL_TO), F_KARL_STATE,
	    json_object_get(rec, F_KARL_STATE), F_KARL_VERP,
	    json_object_get(rec, F_KARL_VERP), F_KARL_DATA,
	    json_object_get(rec, F_KARL_DATA)));
	return 0;
}

int
karl_spool_receivers(const char *id, json_t *arr, size_t max, int *more)
{
	const leveldb_snapshot_t *snap;
	leveldb_readoptions_t *ro;
	struct list_ctx l = { arr, max, more };
	char key[KEY_MAX];
	json_t *rec;
	int rc;

	*more = 0;
	if (spool_db == NULL)
		return -1;
	ro = with_snapshot(&snap);
	snprintf(key, sizeof(key), JOB_PREFIX "%s", id);
	if ((rec = spool_get_json(ro, key, &rc)) == NULL) {
		end_snapshot(ro, snap);
		return rc == -1 ? -1 : 1;
	}
	json_decref(rec);
	rc = rcpt_walk(ro, id, list_one, &l);
	end_snapshot(ro, snap);
	return rc;
}

int
karl_spool_message(const char *id, char **msg, size_t *len)
{
	char key[KEY_MAX];
	int rc;

	*msg = NULL;
	if (spool_db == NULL)
		return -1;
	snprintf(key, sizeof(key), MSG_PREFIX "%s", id);
	*msg = spool_get(spool_ropts, key, len, &rc);
	if (*msg == NULL)
		return rc == -1 ? -1 : 1;
	return 0;
}

int
karl_job_of_key(const char *key, char *id, size_t idlen)
{
	const char *p, *end;
	size_t n;

	if (strncmp(key, RCPT_PREFIX, strlen(RCPT_PREFIX)) != 0)
		return -1;
	p = key + strlen(RCPT_PREFIX);
	/* the id ends before "/<batch:08>/<i:04>" */
	end = key + strlen(key);
	if ((size_t)(end - p) < 15)
		return -1;
	n = (size_t)(end - p) - 14;
	if (n >= idlen || p[n] != '/')
		return -1;
	memcpy(id, p, n);
	id[n] = '\0';
	return 0;
}

int
karl_spool_scan(const char *after, karl_scan_fn fn, void *ctx)
{
	leveldb_iterator_t *it;
	char key[KEY_MAX], *err = NULL;
	size_t plen = strlen(RCPT_PREFIX), klen, vlen, alen;
	const char *k, *v;
	json_t *rec;
	int rc = 0;

	if (spool_db == NULL)
		return -1;
	alen = strlen(after);
	it = leveldb_create_iterator(spool_db, spool_ropts);
	if (alen == 0)
		leveldb_iter_seek(it, RCPT_PREFIX, plen);
	else
		leveldb_iter_seek(it, after, alen);
	for (; leveldb_iter_valid(it); leveldb_iter_next(it)) {
		k = leveldb_iter_key(it, &klen);
		if (klen < plen || memcmp(k, RCPT_PREFIX, plen) != 0)
			break;
		if (klen >= sizeof(key))
			continue;
		if (klen == alen && memcmp(k, after, alen) == 0)
			continue;	/* the one we stopped at */
		v = leveldb_iter_value(it, &vlen);
		/* sent receivers stay until their job is done: skip them
		 * unparsed (compact JSON; a quote inside a value is escaped,
		 * so this cannot match data) */
		if (memmem(v, vlen, SENT_MARK, strlen(SENT_MARK)) != NULL)
			continue;
		memcpy(key, k, klen);
		key[klen] = '\0';
		if ((rec = json_loadb(v, vlen, 0, NULL)) == NULL ||
		    !json_is_object(rec)) {
			log_err("karl: spool record %s is corrupt", key);
			json_decref(rec);
			continue;
		}
		rc = fn(ctx, key, rec);
		json_decref(rec);
		if (rc != 0) {
			rc = 0;
			break;
		}
	}
	leveldb_iter_get_error(it, &err);
	if (err != NULL) {
		log_err("karl: spool scan: %s", err);
		leveldb_free(err);
		rc = -1;
	}
	leveldb_iter_destroy(it);
	return rc;
}

int
karl_spool_job(const char *id, json_t **rec, char **msg, size_t *len)
{
	char key[KEY_MAX];
	int rc;

	*rec = NULL;
	*msg = NULL;
	if (spool_db == NULL)
		return -1;
	snprintf(key, sizeof(key), JOB_PREFIX "%s", id);
	if ((*rec = spool_get_json(spool_ropts, key, &rc)) == NULL)
		return rc == -1 ? -1 : 1;
	snprintf(key, sizeof(key), MSG_PREFIX "%s", id);
	if ((*msg = spool_get(spool_ropts, key, len, &rc)) == NULL) {
		json_decref(*rec);
		*rec = NULL;
		return rc == -1 ? -1 : 1;
	}
	return 0;
}

/* A job touched by one karl_spool_record call. */
struct touched {
	char		 id[KARL_JOB_MAX + 1];
	json_t		*rec;		/* its record, updated */
	int		 finished;
};

/* stripe_cmp - qsort order of lock stripes (lowest first: no deadlock). */
static int
stripe_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(pthread_mutex_t *const *)a;
	uintptr_t y = (uintptr_t)*(pthread_mutex_t *const *)b;

	return x < y ? -1 : x > y;
}

/* delete_prefix - delete every key under prefix into wb. */
static void
delete_prefix(leveldb_writebatch_t *wb, const char *prefix)
{
	leveldb_iterator_t *it;
	size_t plen = strlen(prefix), klen;
	const char *k;

	it = leveldb_create_iterator(spool_db, spool_ropts);
	for (leveldb_iter_seek(it, prefix, plen); leveldb_iter_valid(it);
	    leveldb_iter_next(it)) {
		k = leveldb_iter_key(it, &klen);
		if (klen < plen || memcmp(k, prefix, plen) != 0)
			break;
		leveldb_writebatch_delete(wb, k, klen);
	}
	leveldb_iter_destroy(it);
}

/* finish_job - replace job t's keys with its tombstone (under its lock). */
static void
finish_job(const struct touched *t, time_t now)
{
	leveldb_writebatch_t *wb = leveldb_writebatch_create();
	char key[KEY_MAX], *lerr = NULL;
	json_t *tomb;

	snprintf(key, sizeof(key), RCPT_PREFIX "%s/", t->id);
	delete_prefix(wb, key);
	snprintf(key, sizeof(key), BATCH_PREFIX "%s/", t->id);
	delete_prefix(wb, key);
	snprintf(key, sizeof(key), MSG_PREFIX "%s", t->id);
	leveldb_writebatch_delete(wb, key, strlen(key));
	snprintf(key, sizeof(key), JOB_PREFIX "%s", t->id);
	leveldb_writebatch_delete(wb, key, strlen(key));
	tomb = json_pack("{s:O, s:I, s:I, s:I, s:I, s:I, s:I}", F_KARL_KIND,
	    json_object_get(t->rec, F_KARL_KIND), F_KARL_BATCHES,
	    (json_int_t)record_int(t->rec, F_KARL_BATCHES), F_KARL_RECEIVERS,
	    (json_int_t)record_int(t->rec, F_KARL_RECEIVERS), F_KARL_SENT,
	    (json_int_t)record_int(t->rec, J_NSENT), F_KARL_FAILED,
	    (json_int_t)record_int(t->rec, J_NFAILED), J_CREATED,
	    (json_int_t)record_int(t->rec, J_CREATED), J_DONE,
	    (json_int_t)now);
	if (tomb == NULL)
		panic("karl: cannot build the tombstone of %s", t->id);
	snprintf(key, sizeof(key), DONE_PREFIX "%s", t->id);
	batch_put_json(wb, key, tomb);
	json_decref(tomb);
	leveldb_write(spool_db, spool_wopts, wb, &lerr);
	leveldb_writebatch_destroy(wb);
	if (lerr != NULL) {
		/* the job stays; the next outcome of it tries again */
		log_err("karl: removing delivered job %s: %s", t->id, lerr);
		leveldb_free(lerr);
		return;
	}
	log_info("karl: job %s delivered: %lld sent, %lld failed", t->id,
	    record_int(t->rec, J_NSENT), record_int(t->rec, J_NFAILED));
}

/* job_finished - complete, and every receiver final? */
static int
job_finished(const json_t *rec)
{
	return json_is_true(json_object_get(rec, F_KARL_LAST)) &&
	    record_int(rec, J_NSENT) + record_int(rec, J_NFAILED) >=
	    record_int(rec, F_KARL_RECEIVERS);
}

int
karl_spool_record(const struct karl_outcome *o, size_t n, time_t now)
{
	pthread_mutex_t **locks;
	struct touched *t;
	leveldb_writebatch_t *wb;
	char key[KEY_MAX], id[KARL_JOB_MAX + 1], *lerr = NULL;
	size_t nt = 0, nl = 0, i, j;
	int rc = 0, r;

	if (spool_db == NULL || n == 0)
		return spool_db == NULL ? -1 : 0;
	t = xcalloc(n, sizeof(*t));
	locks = xcalloc(n, sizeof(*locks));
	for (i = 0; i < n; i++) {
		if (karl_job_of_key(o[i].key, id, sizeof(id)) == -1)
			panic("karl: bad receiver key %s", o[i].key);
		for (j = 0; j < nt && strcmp(t[j].id, id) != 0; j++)
			;
		if (j == nt) {
			strlcpy_chk(t[nt++].id, id, sizeof(t[0].id));
			locks[nl++] = spool_lock(id);
		}
	}
	/* intake changes job records too: take each stripe once, in order */
	qsort(locks, nl, sizeof(*locks), stripe_cmp);
	for (i = 0; i < nl; i++)
		if (i == 0 || locks[i] != locks[i - 1])
			pthread_mutex_lock(locks[i]);

	wb = leveldb_writebatch_create();
	for (j = 0; j < nt; j++) {
		snprintf(key, sizeof(key), JOB_PREFIX "%s", t[j].id);
		if ((t[j].rec = spool_get_json(spool_ropts, key, &r)) == NULL) {
			log_err("karl: outcome for job %s without a record",
			    t[j].id);
			rc = -1;
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		batch_put_json(wb, o[i].key, o[i].rec);
		if (!o[i].final)
			continue;
		karl_job_of_key(o[i].key, id, sizeof(id));
		for (j = 0; strcmp(t[j].id, id) != 0; j++)
			;
		json_object_set_new(t[j].rec, o[i].sent ? J_NSENT : J_NFAILED,
		    json_integer(record_int(t[j].rec, o[i].sent ? J_NSENT :
		    J_NFAILED) + 1));
	}
	for (j = 0; j < nt; j++) {
		snprintf(key, sizeof(key), JOB_PREFIX "%s", t[j].id);
		batch_put_json(wb, key, t[j].rec);
		t[j].finished = job_finished(t[j].rec);
	}
	leveldb_write(spool_db, spool_wopts_outcome, wb, &lerr);
	if (lerr != NULL) {
		log_err("karl: spool write of %zu outcomes: %s", n, lerr);
		leveldb_free(lerr);
		rc = -1;
		goto out;
	}
	for (j = 0; j < nt; j++)
		if (t[j].finished)
			finish_job(&t[j], now);
out:
	leveldb_writebatch_destroy(wb);
	for (i = nl; i-- > 0;)
		if (i == 0 || locks[i] != locks[i - 1])
			pthread_mutex_unlock(locks[i]);
	for (j = 0; j < nt; j++)
		json_decref(t[j].rec);
	free(t);
	free(locks);
	return rc;
}

/* finish_stragglers - remove jobs that are done but still here (their
 * removal failed after their last outcome was written). */
static void
finish_stragglers(time_t now)
{
	leveldb_iterator_t *it;
	size_t plen = strlen(JOB_PREFIX), klen, vlen;
	struct touched t;
	pthread_mutex_t *m;
	const char *k, *v;
	char key[KEY_MAX];
	json_t *rec;
	int rc;

	it = leveldb_create_iterator(spool_db, spool_ropts);
	for (leveldb_iter_seek(it, JOB_PREFIX, plen); leveldb_iter_valid(it);
	    leveldb_iter_next(it)) {
		k = leveldb_iter_key(it, &klen);
		if (klen < plen || memcmp(k, JOB_PREFIX, plen) != 0)
			break;
		v = leveldb_iter_value(it, &vlen);
		if (klen - plen > KARL_JOB_MAX ||
		    (rec = json_loadb(v, vlen, 0, NULL)) == NULL)
			continue;
		if (job_finished(rec)) {
			memset(&t, 0, sizeof(t));
			memcpy(t.id, k + plen, klen - plen);
			m = spool_lock(t.id);
			pthread_mutex_lock(m);
			snprintf(key, sizeof(key), JOB_PREFIX "%s", t.id);
			/* again under the lock: intake may have added a batch */
			if ((t.rec = spool_get_json(spool_ropts, key, &rc)) !=
			    NULL && job_finished(t.rec))
				finish_job(&t, now);
			pthread_mutex_unlock(m);
			json_decref(t.rec);
		}
		json_decref(rec);
	}
	leveldb_iter_destroy(it);
}

void
karl_spool_prune(time_t now)
{
	leveldb_writebatch_t *wb;
	leveldb_iterator_t *it;
	size_t plen = strlen(DONE_PREFIX), klen, vlen, n = 0;
	const char *k, *v;
	char *lerr = NULL;
	json_t *t;

	if (spool_db == NULL)
		return;
	finish_stragglers(now);
	wb = leveldb_writebatch_create();
	it = leveldb_create_iterator(spool_db, spool_ropts);
	for (leveldb_iter_seek(it, DONE_PREFIX, plen); leveldb_iter_valid(it);
	    leveldb_iter_next(it)) {
		k = leveldb_iter_key(it, &klen);
		if (klen < plen || memcmp(k, DONE_PREFIX, plen) != 0)
			break;
		v = leveldb_iter_value(it, &vlen);
		t = json_loadb(v, vlen, 0, NULL);
		if (t == NULL ||
		    record_int(t, J_DONE) + KARL_TOMBSTONE_TTL < now) {
			leveldb_writebatch_delete(wb, k, klen);
			n++;
		}
		json_decref(t);
	}
	leveldb_iter_destroy(it);
	if (n > 0) {
		leveldb_write(spool_db, spool_wopts, wb, &lerr);
		if (lerr != NULL) {
			log_err("karl: pruning tombstones: %s", lerr);
			leveldb_free(lerr);
		} else
			log_info("karl: %zu tombstones pruned", n);
	}
	leveldb_writebatch_destroy(wb);
}

json_t *
karl_spool_rcpt(const char *key)
{
	int rc;

	if (spool_db == NULL)
		return NULL;
	return spool_get_json(spool_ropts, key, &rc);
}
