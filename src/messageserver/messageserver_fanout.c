/* SPDX-License-Identifier: MIT */
/*
 * messageserver_fanout.c - hand the outbox to karl.
 *
 * A few threads claim due outbox rows (FOR UPDATE SKIP LOCKED, so any
 * number of messageserver instances share the work).  Each batch is one
 * transaction that holds the row's lock while karl is called: claim (or
 * re-lock), read the next receivers, send them, record the progress,
 * commit.  If this process dies mid-batch, its connection drops, the lock
 * goes and the row is due again at once.  Between the batches of a large
 * group the row is leased (next_attempt_at moves messageserver_outbox_lease
 * seconds ahead), so no other thread takes it up meanwhile.  These
 * transactions commit asynchronously (synchronous_commit off): progress
 * that a server crash loses only makes a batch go again, and karl takes a
 * repeated (job, batch) once.  A post's receivers are streamed from
 * PostgreSQL KARL_BATCH_MAX at a time by membership id (keyset
 * pagination: memory stays flat however large the group); job
 * "post-<outbox id>", batch n.  karl unreachable: retry with exponential
 * backoff; karl refusing (400/409): the row fails and the operator hears
 * of it through errord.
 *
 * The receivers of a post are the active members with individual delivery
 * (special-only members too when the post is special), less those whose
 * address is bouncing, who muted the topic or one of its hashtags, and
 * following-only members who follow neither the topic nor its hashtags.
 * Each carries its footer data with signed unsubscribe and settings links
 * and a VERP string (account and message) that karl signs.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "daemon.h"
#include "db.h"
#include "karl_clnt.h"
#include "log.h"
#include "messageserver.h"
#include "metrics.h"
#include "token.h"
#include "xalloc.h"

#define OUTBOX_IDLE_S	2		/* poll when not kicked */
#define OUTBOX_BACKOFF	600		/* most seconds between attempts */
#define OUTBOX_PRUNE_S	600		/* between prunes */
#define OUTBOX_KEEP	"7 days"	/* finished rows kept for operators */

static pthread_mutex_t fo_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fo_cond = PTHREAD_COND_INITIALIZER;
static pthread_t *fo_threads;
static int fo_nthreads;
static int fo_stopping;
static unsigned long fo_kicks;

static struct metric *m_batches, *m_receivers, *m_tempfail, *m_failed,
    *m_done;

/* One claimed outbox row. */
struct row {
	char		id[24];
	char		kind[8];
	char		group_id[24];
	char		message_id[24];
	long long	batch;
	char		after[24];
	int		attempts;
};

static const char default_footer_text[] =
    "-=-=-=-=-=-=-=-=-=-=-=-\n"
    "Group {{group}}: {{{group_url}}}\n"
    "This message: {{{message_url}}}\n"
    "Your settings: {{{settings_url}}}\n"
    "Unsubscribe: {{{unsubscribe_url}}}\n"
    "-=-=-=-=-=-=-=-=-=-=-=-\n";

static const char default_footer_html[] =
    "<hr><p style=\"font-size:small\">"
    "<a href=\"{{group_url}}\">{{group}}</a> | "
    "<a href=\"{{message_url}}\">This message</a> | "
    "<a href=\"{{settings_url}}\">Your settings</a> | "
    "<a href=\"{{unsubscribe_url}}\">Unsubscribe</a></p>";

/* begin_async - a transaction whose commit does not wait for the WAL
 * flush (see above); 0 or -1. */
static int
begin_async(struct db *d)
{
	if (db_begin(d) == -1)
		return -1;
	if (db_exec(d, "SET LOCAL synchronous_commit = off", DB_NOPARAMS) ==
	    -1) {
		db_rollback(d);
		return -1;
	}
	return 0;
}

/* claim - lock the next due row inside the open transaction; 1 claimed,
 * 0 none, -1 error. */
static int
claim(struct db *d, struct row *w)
{
	PGresult *r;

	r = db_query(d, "UPDATE outbox SET attempts = attempts + 1 "
	    "WHERE id = (SELECT id FROM outbox WHERE status = 'pending' AND "
	    "next_attempt_at <= now() ORDER BY next_attempt_at, id LIMIT 1 "
	    "FOR UPDATE SKIP LOCKED) RETURNING id, kind, "
	    "coalesce(group_id, 0), coalesce(message_id, 0), batch, "
	    "after_member, attempts", DB_NOPARAMS);
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	strlcpy_chk(w->id, PQgetvalue(r, 0, 0), sizeof(w->id));
	strlcpy_chk(w->kind, PQgetvalue(r, 0, 1), sizeof(w->kind));
	strlcpy_chk(w->group_id, PQgetvalue(r, 0, 2), sizeof(w->group_id));
	strlcpy_chk(w->message_id, PQgetvalue(r, 0, 3),
	    sizeof(w->message_id));
	w->batch = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
	strlcpy_chk(w->after, PQgetvalue(r, 0, 5), sizeof(w->after));
	w->attempts = (int)strtol(PQgetvalue(r, 0, 6), NULL, 10);
	PQclear(r);
	return 1;
}

/* relock - a new transaction holding w's row again (the next batch); 1,
 * 0 when the row is no longer ours to send, -1 error. */
static int
relock(struct db *d, const struct row *w)
{
	int rc;

	if (begin_async(d) == -1)
		return -1;
	rc = db_query_value(d, "SELECT 1 FROM outbox WHERE id = $1 AND "
	    "status = 'pending' FOR UPDATE", DB_PARAMS(w->id), NULL, 0);
	if (rc != 1)
		db_rollback(d);
	return rc;
}

/* finish - run sql in the open transaction and commit; if the transaction
 * had already failed (a database error), roll it back and run sql on its
 * own, so the row is not taken up again at once. */
static void
finish(struct db *d, const char *sql, int n, const char *const *params)
{
	if (db_exec(d, sql, n, params) != -1 && db_commit(d) == 0)
		return;
	db_rollback(d);
	db_exec(d, sql, n, params);
}

/* retry_later - karl was unreachable, or the database failed: back off
 * exponentially (ends the transaction). */
static void
retry_later(struct db *d, const struct row *w, const char *why)
{
	char delay[16];
	int s = w->attempts >= 10 ? OUTBOX_BACKOFF : 1 << w->attempts;

	if (s > OUTBOX_BACKOFF)
		s = OUTBOX_BACKOFF;
	snprintf(delay, sizeof(delay), "%d", s);
	metric_add(m_tempfail, 1);
	log_warnx("messageserver: outbox %s: karl: %s; retry in %d s", w->id,
	    why, s);
	finish(d, "UPDATE outbox SET next_attempt_at = now() + "
	    "make_interval(secs => $2::int), last_error = $3 WHERE id = $1",
	    DB_PARAMS(w->id, delay, why));
}

/* fail - karl refused the job: it will not go anywhere (ends the
 * transaction). */
static void
fail(struct db *d, const struct row *w, const char *why)
{
	metric_add(m_failed, 1);
	log_err("messageserver: outbox %s (%s): karl refused it: %s", w->id,
	    w->kind, why);
	finish(d, "UPDATE outbox SET status = 'failed', last_error = $2, "
	    "done_at = now() WHERE id = $1", DB_PARAMS(w->id, why));
}

/* progress - batch n (of count receivers, ending at member after) is
 * with karl: record it and commit; 0 or -1. */
static int
progress(struct db *d, const struct row *w, long long next_batch,
    const char *after, size_t count, int last)
{
	char nb[24], cnt[24], lease[16];

	snprintf(lease, sizeof(lease), "%d", cfg.messageserver_outbox_lease);
	snprintf(nb, sizeof(nb), "%lld", next_batch);
	snprintf(cnt, sizeof(cnt), "%zu", count);
	metric_add(m_batches, 1);
	metric_add(m_receivers, (int64_t)count);
	if (last)
		metric_add(m_done, 1);
	if (db_exec(d, "UPDATE outbox SET batch = $2::int, "
	    "after_member = $3::bigint, receivers_sent = receivers_sent + "
	    "$4::int, next_attempt_at = now() + make_interval(secs => "
	    "$6::int), last_error = '', status = CASE WHEN $5::boolean "
	    "THEN 'done' ELSE 'pending' END, done_at = CASE WHEN "
	    "$5::boolean THEN now() END WHERE id = $1", DB_PARAMS(w->id, nb,
	    after, cnt, last ? "true" : "false", lease)) == -1 ||
	    db_commit(d) == -1) {
		db_rollback(d);
		return -1;
	}
	return 0;
}

/* send_batch - one batch to karl; 0 sent, -1 not (row updated). */
static int
send_batch(struct db *d, struct karl_clnt *kc, const struct row *w,
    const struct karl_job *job, long long batch, int last,
    const struct karl_receiver *rv, size_t n)
{
	char why[256];

	switch (karl_clnt_send(kc, job, batch, last, rv, n, why,
	    sizeof(why))) {
	case KARL_OK:
		return 0;
	case KARL_REFUSED:
		fail(d, w, why);
		return -1;
	default:
		retry_later(d, w, why);
		return -1;
	}
}

/* notice - a composed notice and its few receivers. */
static void
notice(struct db *d, struct karl_clnt *kc, const struct row *w)
{
	struct karl_receiver rv[KARL_BATCH_MAX];
	struct karl_job job;
	unsigned char *raw;
	char jobid[KARL_JOB_MAX], local[MS_ADDR_MAX + 16], verp[32];
	char domain[MS_ADDR_MAX + 1];
	size_t rawlen, n, i;
	json_t *rcv, *v;
	PGresult *r;

	r = db_query(d, "SELECT o.raw, o.receivers, g.domain "
	    "FROM outbox o JOIN groups g ON g.id = o.group_id "
	    "WHERE o.id = $1", DB_PARAMS(w->id));
	if (r == NULL || PQntuples(r) == 0) {
		if (r != NULL)
			fail(d, w, "notice or its group is gone");
		else
			retry_later(d, w, "database error loading the notice");
		PQclear(r);
		return;
	}
	raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 0),
	    &rawlen);
	rcv = json_loads(PQgetvalue(r, 0, 1), 0, NULL);
	strlcpy_chk(local, MS_BOUNCE_LOCAL, sizeof(local));
	strlcpy_chk(domain, PQgetvalue(r, 0, 2), sizeof(domain));
	PQclear(r);
	n = json_array_size(rcv);
	if (raw == NULL || n == 0 || n > KARL_BATCH_MAX) {
		fail(d, w, "notice without receivers");
		goto out;
	}
	snprintf(verp, sizeof(verp), "n%s", w->id);
	json_array_foreach(rcv, i, v) {
		rv[i].to = json_string_value(json_object_get(v, "to"));
		/* a receiver may name its own (a bounce probe: "p<account>") */
		if ((rv[i].verp = json_string_value(json_object_get(v,
		    "verp"))) == NULL)
			rv[i].verp = verp;
		rv[i].data = NULL;
		if (rv[i].to == NULL) {
			fail(d, w, "notice receiver without address");
			goto out;
		}
	}
	snprintf(jobid, sizeof(jobid), "notice-%s", w->id);
	memset(&job, 0, sizeof(job));
	job.job = jobid;
	job.kind = "notice";
	job.message = raw;
	job.message_len = rawlen;
	job.sender_local = local;
	job.sender_domain = domain;
	job.sign_domain = domain;
	if (send_batch(d, kc, w, &job, 0, 1, rv, n) == 0)
		progress(d, w, 1, w->after, n, 1);
out:
	json_decref(rcv);
	PQfreemem(raw);
}

/* The parts of an archived post fan-out needs. */
struct post {
	char		group[MS_ADDR_MAX + 1];
	char		domain[MS_ADDR_MAX + 1];
	char		title[256];
	char		subject_tag[80];
	char		reply_to[24];
	char		dmarc[16];
	char		*footer;	/* the group's text footer or NULL */
	unsigned char	*raw;
	size_t		 rawlen;
	long long	 number;
	char		topic_id[24];
	int		 special;
	char		*from_addr;
	char		*from_name;
	char		*subject;
};

static void
post_free(struct post *p)
{
	free(p->footer);
	PQfreemem(p->raw);
	free(p->from_addr);
	free(p->from_name);
	free(p->subject);
}

/* post_load - the archived message of row w; 1, 0 gone, -1 error. */
static int
post_load(struct db *d, const struct row *w, struct post *p)
{
	PGresult *r;

	memset(p, 0, sizeof(*p));
	r = db_query(d, "SELECT g.name, g.domain, g.title, g.subject_tag, "
	    "g.reply_to, g.dmarc_rewrite, g.footer_template, m.raw, m.number, "
	    "m.topic_id, m.special, m.from_address, m.from_name, m.subject "
	    "FROM messages m JOIN groups g ON g.id = m.group_id "
	    "WHERE m.id = $1 AND m.deleted_at IS NULL",
	    DB_PARAMS(w->message_id));
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return 0;
	}
	strlcpy_chk(p->group, PQgetvalue(r, 0, 0), sizeof(p->group));
	strlcpy_chk(p->domain, PQgetvalue(r, 0, 1), sizeof(p->domain));
	strlcpy_chk(p->title, PQgetvalue(r, 0, 2), sizeof(p->title));
	strlcpy_chk(p->subject_tag, PQgetvalue(r, 0, 3),
	    sizeof(p->subject_tag));
	strlcpy_chk(p->reply_to, PQgetvalue(r, 0, 4), sizeof(p->reply_to));
	strlcpy_chk(p->dmarc, PQgetvalue(r, 0, 5), sizeof(p->dmarc));
	if (PQgetvalue(r, 0, 6)[0] != '\0')
		p->footer = xstrdup(PQgetvalue(r, 0, 6));
	p->raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 7),
	    &p->rawlen);
	p->number = strtoll(PQgetvalue(r, 0, 8), NULL, 10);
	strlcpy_chk(p->topic_id, PQgetvalue(r, 0, 9), sizeof(p->topic_id));
	p->special = PQgetvalue(r, 0, 10)[0] == 't';
	p->from_addr = xstrdup(PQgetvalue(r, 0, 11));
	p->from_name = xstrdup(PQgetvalue(r, 0, 12));
	p->subject = xstrdup(PQgetvalue(r, 0, 13));
	PQclear(r);
	if (p->raw == NULL) {
		post_free(p);
		return -1;
	}
	return 1;
}

/* signed_token - a per-member token for purpose (allocated). */
static char *
signed_token(const char *purpose, const char *membership)
{
	unsigned char key[TOKEN_KEY_LEN];

	token_derive(cfg.secret ? cfg.secret : "",
	    cfg.secret ? strlen(cfg.secret) : 0, purpose, key);
	return token_sign(key, purpose, membership, strlen(membership), 0);
}

/* footer_data - the footer variables of one receiver. */
static json_t *
footer_data(const struct post *p, const char *membership, const char *email,
    const char *name)
{
	char *unsub = signed_token("unsubscribe", membership);
	char *settings = signed_token("settings", membership);
	const char *url = cfg.public_url ? cfg.public_url : "";
	json_t *o;

	o = json_pack("{s:s, s:s, s:s++, s:s+++++, s:s++, s:s, s:s++}",
	    "name", name, "email", email,
	    "unsubscribe_url", url, "/unsubscribe?t=", unsub,
	    "unsubscribe_mailto", "mailto:", p->group, "+unsubscribe-", unsub,
	    "@", p->domain,
	    "settings_url", url, "/settings?t=", settings,
	    "group", p->group,
	    "group_url", url, "/g/", p->group);
	json_object_set_new(o, "message_url", json_sprintf("%s/g/%s/message/"
	    "%lld", url, p->group, p->number));
	free(unsub);
	free(settings);
	return o;
}

/* post - fan an archived post out to the group, batch by batch. */
static void
post(struct db *d, struct karl_clnt *kc, const struct row *w)
{
	struct karl_receiver rv[KARL_BATCH_MAX];
	json_t *data[KARL_BATCH_MAX];
	char verp[KARL_BATCH_MAX][48];
	char jobid[KARL_JOB_MAX], local[MS_ADDR_MAX + 16];
	char after[24], batch[24];
	struct ms_outgoing o;
	struct karl_job job;
	struct post p;
	char *msg;
	size_t msglen, n, i;
	long long b = w->batch;
	PGresult *r;
	int rc, last;

	if ((rc = post_load(d, w, &p)) != 1) {
		if (rc == 0)
			fail(d, w, "message deleted before it was sent");
		else
			retry_later(d, w, "database error loading the post");
		return;
	}
	memset(&o, 0, sizeof(o));
	o.raw = (const char *)p.raw;
	o.rawlen = p.rawlen;
	o.group = p.group;
	o.domain = p.domain;
	o.title = p.title;
	o.subject_tag = p.subject_tag;
	o.reply_to_policy = p.reply_to;
	o.subject = p.subject;
	o.from_addr = p.from_addr;
	o.from_name = p.from_name;
	o.public_url = cfg.public_url ? cfg.public_url : "";
	o.number = p.number;
	o.rewrite_from = messageserver_dmarc_rewrite(p.dmarc, p.from_addr);
	msg = messageserver_outgoing(&o, &msglen);

	snprintf(jobid, sizeof(jobid), "post-%s", w->id);
	strlcpy_chk(local, MS_BOUNCE_LOCAL, sizeof(local));
	memset(&job, 0, sizeof(job));
	job.job = jobid;
	job.kind = "post";
	job.message = msg;
	job.message_len = msglen;
	job.footer_text = p.footer ? p.footer : default_footer_text;
	job.footer_html = default_footer_html;
	job.sender_local = local;
	job.sender_domain = p.domain;
	job.sign_domain = p.domain;
	strlcpy_chk(after, w->after, sizeof(after));

	for (;;) {
		snprintf(batch, sizeof(batch), "%d", KARL_BATCH_MAX + 1);
		r = db_query(d, "SELECT m.id, a.id, a.email, a.display_name "
		    "FROM memberships m JOIN accounts a ON a.id = m.account_id "
		    "LEFT JOIN bounce_state bs ON bs.account_id = a.id "
		    "WHERE m.group_id = $1 AND m.id > $2::bigint "
		    "AND m.status = 'active' AND a.status = 'active' "
		    "AND (m.delivery = 'individual' OR "
		    "(m.delivery = 'special_only' AND $3::boolean)) "
		    "AND coalesce(bs.status, 'ok') = 'ok' "
		    "AND (m.nomail_until IS NULL OR m.nomail_until < "
		    "current_date) "
		    "AND NOT EXISTS (SELECT 1 FROM topic_subscriptions ts "
		    "WHERE ts.membership_id = m.id AND ts.topic_id = $4::bigint "
		    "AND ts.mode = 'mute') "
		    "AND NOT EXISTS (SELECT 1 FROM hashtag_subscriptions hs "
		    "JOIN topic_hashtags th ON th.hashtag_id = hs.hashtag_id "
		    "WHERE hs.membership_id = m.id AND th.topic_id = $4::bigint "
		    "AND hs.mode = 'mute') "
		    "AND (NOT m.following_only OR EXISTS (SELECT 1 FROM "
		    "topic_subscriptions ts WHERE ts.membership_id = m.id AND "
		    "ts.topic_id = $4::bigint AND ts.mode = 'follow') OR EXISTS "
		    "(SELECT 1 FROM hashtag_subscriptions hs JOIN topic_hashtags "
		    "th ON th.hashtag_id = hs.hashtag_id WHERE hs.membership_id "
		    "= m.id AND th.topic_id = $4::bigint AND hs.mode = 'follow')) "
		    "ORDER BY m.id LIMIT $5::int", DB_PARAMS(w->group_id, after,
		    p.special ? "true" : "false", p.topic_id, batch));
		if (r == NULL) {
			retry_later(d, w, "database error reading receivers");
			break;
		}
		n = (size_t)PQntuples(r);
		last = n <= KARL_BATCH_MAX;
		if (!last)
			n = KARL_BATCH_MAX;
		if (n == 0) {
			/* nobody (left) to send to */
			if (b > 0)
				log_warnx("messageserver: outbox %s: receivers "
				    "gone after batch %lld", w->id, b - 1);
			progress(d, w, b, after, 0, 1);
			PQclear(r);
			break;
		}
		for (i = 0; i < n; i++) {
			data[i] = footer_data(&p, PQgetvalue(r, (int)i, 0),
			    PQgetvalue(r, (int)i, 2), PQgetvalue(r, (int)i, 3));
			snprintf(verp[i], sizeof(verp[i]), "%s.%s",
			    PQgetvalue(r, (int)i, 1), w->message_id);
			rv[i].to = PQgetvalue(r, (int)i, 2);
			rv[i].verp = verp[i];
			rv[i].data = data[i];
		}
		rc = send_batch(d, kc, w, &job, b, last, rv, n);
		strlcpy_chk(after, PQgetvalue(r, (int)n - 1, 0), sizeof(after));
		for (i = 0; i < n; i++)
			json_decref(data[i]);
		PQclear(r);
		if (rc == -1)
			break;
		b++;
		if (progress(d, w, b, after, n, last) == -1 || last ||
		    relock(d, w) != 1)
			break;
	}
	free(msg);
	post_free(&p);
}

/* prune - forget outbox rows done or failed long ago, a bounded number
 * at a time; at most every OUTBOX_PRUNE_S seconds per process. */
static void
prune(struct db *d)
{
	static time_t last;
	static pthread_mutex_t plock = PTHREAD_MUTEX_INITIALIZER;
	time_t now = time(NULL);
	long n;

	pthread_mutex_lock(&plock);
	if (now - last < OUTBOX_PRUNE_S) {
		pthread_mutex_unlock(&plock);
		return;
	}
	last = now;
	pthread_mutex_unlock(&plock);
	n = db_exec(d, "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox "
	    "WHERE status <> 'pending' AND done_at < now() - interval '"
	    OUTBOX_KEEP "' LIMIT 10000)", DB_NOPARAMS);
	if (n > 0)
		log_info("messageserver: pruned %ld outbox entries", n);
}

/* one - process one due row; 1 did, 0 nothing due, -1 trouble.  The
 * row's handlers end the transaction the claim began. */
static int
one(struct karl_clnt *kc)
{
	struct db *d;
	struct row w;
	int rc;

	if ((d = db_get(daemon_db)) == NULL)
		return -1;
	prune(d);
	if (begin_async(d) == -1) {
		db_put(daemon_db, d);
		return -1;
	}
	if ((rc = claim(d, &w)) == 1) {
		if (strcmp(w.kind, "post") == 0)
			post(d, kc, &w);
		else
			notice(d, kc, &w);
	} else
		db_rollback(d);
	db_put(daemon_db, d);		/* rolls back what a handler left */
	return rc;
}

static void *
worker(void *arg)
{
	struct karl_clnt *kc;
	struct timespec until;
	unsigned long seen;
	char *url;
	int rc;

	(void)arg;
	url = config_url(&cfg, cfg.karl_port);
	kc = karl_clnt_new(url, daemon_api_secret, cfg.http_timeout_ms);
	free(url);
	pthread_mutex_lock(&fo_lock);
	while (!fo_stopping) {
		seen = fo_kicks;
		pthread_mutex_unlock(&fo_lock);
		rc = one(kc);
		pthread_mutex_lock(&fo_lock);
		if (rc == 1 || fo_stopping || fo_kicks != seen)
			continue;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += OUTBOX_IDLE_S;
		pthread_cond_timedwait(&fo_cond, &fo_lock, &until);
	}
	pthread_mutex_unlock(&fo_lock);
	karl_clnt_free(kc);
	return NULL;
}

int
messageserver_fanout_start(int n)
{
	int i;

	m_batches = metric_counter("messageserver_fanout_batches_total",
	    "receiver batches karl accepted", NULL);
	m_receivers = metric_counter("messageserver_fanout_receivers_total",
	    "receivers handed to karl", NULL);
	m_done = metric_counter("messageserver_outbox_done_total",
	    "outbox entries completely handed to karl", NULL);
	m_tempfail = metric_counter("messageserver_fanout_tempfail_total",
	    "hand-overs to karl that will be retried", NULL);
	m_failed = metric_counter("messageserver_outbox_failed_total",
	    "outbox entries karl refused", NULL);
	fo_threads = xreallocarray(NULL, (size_t)n, sizeof(*fo_threads));
	for (i = 0; i < n; i++) {
		if (pthread_create(&fo_threads[i], NULL, worker, NULL) != 0) {
			log_warn("messageserver: fan-out thread");
			break;
		}
	}
	fo_nthreads = i;
	return i > 0 ? 0 : -1;
}

void
messageserver_fanout_kick(void)
{
	pthread_mutex_lock(&fo_lock);
	fo_kicks++;
	pthread_cond_broadcast(&fo_cond);
	pthread_mutex_unlock(&fo_lock);
}

void
messageserver_fanout_stop(void)
{
	int i;

	pthread_mutex_lock(&fo_lock);
	fo_stopping = 1;
	pthread_cond_broadcast(&fo_cond);
	pthread_mutex_unlock(&fo_lock);
	for (i = 0; i < fo_nthreads; i++)
		pthread_join(fo_threads[i], NULL);
	free(fo_threads);
	fo_threads = NULL;
	fo_nthreads = 0;
}
