/* SPDX-License-Identifier: MIT */
/*
 * karl_deliver.c - delivery: the scheduler, the workers and the transport.
 *
 *	scheduler (daemon run thread)	walks the spool's rcpt/ keys in order
 *		from a cursor and hands due receivers (queued, deferred whose
 *		time has come, failed not yet reported) to the workers; at
 *		most a bounded number are out at once, so a 100,000-receiver
 *		job is streamed, never held;
 *	karl_workers threads	render, merge and sign each receiver's copy
 *		(karl_prepare.c), look up the MX, or report a failure to
 *		messageserver (POST /v1/bounces);
 *	transport thread	runs the SMTP transactions (karl_smtp.c) or
 *		writes maildirs, within karl_concurrency in all and, towards
 *		MX hosts, karl_domain_concurrency per destination domain;
 *	recorder thread	writes the outcomes that came in meanwhile in one
 *		synced spool write (group commit) before the receivers are
 *		let go, so the transport never waits for the disk.
 * A receiver is recorded sent right after its 2xx, in the next synced
 * write, so a kill -9 can repeat only deliveries in flight or not yet
 * recorded.  Temporary failures (4xx, no connection) retry after
 * karl_retry_min * 2^attempts (at most karl_retry_max, +-25% jitter)
 * until the job is karl_max_age old; 5xx fails at once.  Each failure is
 * reported once: the receiver is recorded failed, then reported, then
 * recorded reported.  Locking: one mutex (dl.lock) for the queues, the
 * set of receivers out, the job cache and the per-domain counts.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "dns.h"
#include "karl.h"
#include "log.h"
#include "messageserver_clnt.h"
#include "metrics.h"
#include "xalloc.h"

#define SET_BUCKETS	1024	/* receivers out, by key */
#define DOM_BUCKETS	256
#define DOM_KEEP	4096	/* idle domains kept for /v1/stats */
#define DOM_METRICS_MAX	100	/* domains with their own metric labels */
#define JOB_CACHE_IDLE	4	/* unused job states kept */
#define PARK_MAX	10000	/* receivers parked for full domains */
#define OUT_BYTES_MAX	(256u * 1024 * 1024)	/* prepared bytes out */
#define REPORT_RETRY	60	/* seconds until a failed report is retried, at
				 * most (karl_retry_min when shorter) */
#define IDLE_WAIT	60	/* seconds the scheduler sleeps at most */
#define DIAG_LEN	1000
#define RECORD_BATCH	64	/* fewer outcomes: wait RECORD_WAIT_NS */
#define RECORD_WAIT_NS	2000000
#define MX_ADDR_MAX	5	/* addresses tried in one attempt, over all
				   MX hosts (Postfix's smtp_mx_address_limit) */
#define MX_LOOKUP_MAX	5	/* MX host names looked up for one attempt */
#define SMTP_PORT	25

/* One place to try: a host name (the MX; for TLS SNI, logs and session
 * reuse) and the address to connect to ("": the transport resolves the
 * name, for the relay). */
struct target {
	char		 host[DNS_NAME_MAX + 1];
	char		 addr[INET6_ADDRSTRLEN];
};

struct jobref {
	char			 id[KARL_JOB_MAX + 1];
	struct karl_jobctx	*ctx;
	int			 refs;
	struct jobref		*next;
};

struct queue {
	struct work	*head, *tail;
	size_t		 n;
};

struct dom {
	char		 name[DNS_NAME_MAX + 1];
	struct queue	 parked;	/* taken while the domain was full */
	int		 out;		/* receivers out (scheduler's bound) */
	int		 flying;	/* SMTP transactions */
	long long	 sent, deferred, failed;
	/* outcomes in /metrics, labelled with the domain (DOM_METRICS_MAX
	 * of them; later domains share domain="other") */
	struct metric	*m_sent, *m_deferred, *m_failed;
	struct dom	*next;
};

struct work {
	char		 key[KARL_RKEY_MAX];
	struct jobref	*job;
	struct dom	*dom;
	json_t		*rec;		/* the receiver record, owned */
	int		 report;	/* failed: report it */
	size_t		 cost;
	/* prepared by a worker */
	char		*msg, *mail_from;
	size_t		 len;
	struct target	*tgt;		/* in order (allocated) */
	int		 ntgt, itgt, port;	/* itgt: the one being tried */
	/* outcome */
	int		 done;		/* set before the transport */
	int		 ok, code;
	char		 diag[DIAG_LEN + 1];
	struct work	*next;		/* queue */
	struct work	*snext;		/* set bucket */
};

static struct {
	pthread_mutex_t		 lock;
	pthread_cond_t		 sched_cv, prep_cv, xport_cv, record_cv;
	int			 xport_idle;	/* the transport waits in poll */
	int			 stop, kicked, completed, xport_done;
	time_t			 wake_at;	/* earliest retry of one out */
	struct queue		 prep, ready, record;
	struct work		*set[SET_BUCKETS];
	struct dom		*doms[DOM_BUCKETS];
	size_t			 ndoms;
	struct jobref		*jobs;
	size_t			 out, out_bytes, max_out, parked;
	int			 flying;
	int64_t			 spool_pending;
	struct karl_smtp	*smtp;
	/* outcome writes done: bumped under lock before their receivers
	 * leave the set, so a scan that began before the bump may hold a
	 * stale view of one of them */
	uint64_t		 recorded;
	struct messageserver_clnt *ms;
	int			 relay, maildir;
	pthread_t		*workers, xport, recorder;
	int			 nworkers;
	uint64_t		 rnd;
	struct metric		*m_sent, *m_deferred, *m_failed, *m_reported;
	struct metric		*m_queue, *m_flying;
} dl = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.sched_cv = PTHREAD_COND_INITIALIZER,
	.prep_cv = PTHREAD_COND_INITIALIZER,
	.xport_cv = PTHREAD_COND_INITIALIZER,
	.record_cv = PTHREAD_COND_INITIALIZER,
};

static void
q_push(struct queue *q, struct work *w)
{
	w->next = NULL;
	if (q->tail != NULL)
		q->tail->next = w;
	else
		q->head = w;
	q->tail = w;
	q->n++;
}

static struct work *
q_pop(struct queue *q)
{
	struct work *w = q->head;

	if (w != NULL) {
		q->head = w->next;
		if (q->head == NULL)
			q->tail = NULL;
		q->n--;
	}
	return w;
}

static unsigned
hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* set_find - the work out for key (dl.lock held), or NULL. */
static struct work *
set_find(const char *key)
{
	struct work *w;

	for (w = dl.set[hash(key) % SET_BUCKETS]; w != NULL; w = w->snext)
		if (strcmp(w->key, key) == 0)
			return w;
	return NULL;
}

static void
set_del(struct work *w)
{
	struct work **pp;

	for (pp = &dl.set[hash(w->key) % SET_BUCKETS]; *pp != NULL;
	    pp = &(*pp)->snext)
		if (*pp == w) {
			*pp = w->snext;
			return;
		}
}

/* dom_metrics - the domain's outcome counters; the registry hands back
 * the same ones when a forgotten domain comes again.  Domain names are
 * DNS names (letters, digits, '-', '.', '_'), safe inside a label. */
static void
dom_metrics(struct dom *d)
{
	static int labelled;
	char label[DNS_NAME_MAX + 16];

	if (labelled < DOM_METRICS_MAX && strspn(d->name,
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	    "-._") == strlen(d->name)) {
		labelled++;
		snprintf(label, sizeof(label), "domain=\"%s\"", d->name);
	} else
		snprintf(label, sizeof(label), "domain=\"other\"");
	d->m_sent = metric_counter("karl_domain_sent_total",
	    "copies delivered, by destination domain", label);
	d->m_deferred = metric_counter("karl_domain_deferred_total",
	    "temporary failures, by destination domain", label);
	d->m_failed = metric_counter("karl_domain_failed_total",
	    "permanent failures, by destination domain", label);
}

/* dom_get - the entry of domain name (dl.lock held; created). */
static struct dom *
dom_get(const char *name)
{
	struct dom *d, **b = &dl.doms[hash(name) % DOM_BUCKETS];

	for (d = *b; d != NULL; d = d->next)
		if (strcmp(d->name, name) == 0)
			return d;
	d = xcalloc(1, sizeof(*d));
	strlcpy_chk(d->name, name, sizeof(d->name));
	dom_metrics(d);
	d->next = *b;
	*b = d;
	dl.ndoms++;
	return d;
}

/* dom_release - forget an idle domain when too many are kept. */
static void
dom_release(struct dom *d)
{
	struct dom **pp;

	if (d->out > 0 || d->parked.n > 0 || dl.ndoms <= DOM_KEEP)
		return;
	for (pp = &dl.doms[hash(d->name) % DOM_BUCKETS]; *pp != d;
	    pp = &(*pp)->next)
		;
	*pp = d->next;
	free(d);
	dl.ndoms--;
}

/* rand01 - xorshift64 in [0, 1) (recorder thread only). */
static double
rand01(void)
{
	dl.rnd ^= dl.rnd << 13;
	dl.rnd ^= dl.rnd >> 7;
	dl.rnd ^= dl.rnd << 17;
	return (double)(dl.rnd >> 11) / 9007199254740992.0;
}

/* backoff - seconds until attempt number attempts + 1. */
static long
backoff(long long attempts)
{
	double d = cfg.karl_retry_min;
	long long i;

	for (i = 1; i < attempts && d < cfg.karl_retry_max; i++)
		d *= 2;
	if (d > cfg.karl_retry_max)
		d = cfg.karl_retry_max;
	d *= 0.75 + 0.5 * rand01();
	return d < 1 ? 1 : (long)d;
}

static long long
rec_int(const json_t *rec, const char *k)
{
	return json_integer_value(json_object_get(rec, k));
}

static const char *
rec_str(const json_t *rec, const char *k)
{
	const char *s = json_string_value(json_object_get(rec, k));

	return s ? s : "";
}

/* ---------------------------------------------------------- scheduler */

struct scan {
	time_t		 now;
	time_t		 next_due;	/* earliest later attempt seen */
	int		 busy;		/* skipped: out, or domain full */
	int		 full;		/* stopped: no room */
	size_t		 dispatched;
	int64_t		 pending;
	uint64_t	 seq;		/* dl.recorded before the scan began */
	char		 cursor[KARL_RKEY_MAX];
};

/* job_ref - a reference to job id's state, loaded when not cached
 * (dl.lock held; dropped while loading). */
static struct jobref *
job_ref(const char *id)
{
	struct jobref *j;
	json_t *rec;
	char *msg;
	size_t len;

	for (j = dl.jobs; j != NULL; j = j->next)
		if (strcmp(j->id, id) == 0) {
			j->refs++;
			return j;
		}
	pthread_mutex_unlock(&dl.lock);
	if (karl_spool_job(id, &rec, &msg, &len) != 0) {
		pthread_mutex_lock(&dl.lock);
		return NULL;
	}
	j = xcalloc(1, sizeof(*j));
	strlcpy_chk(j->id, id, sizeof(j->id));
	j->ctx = karl_prepare_job(id, rec, msg, len);
	json_decref(rec);
	pthread_mutex_lock(&dl.lock);
	j->refs = 1;
	j->next = dl.jobs;
	dl.jobs = j;
	return j;
}

/* jobs_trim - free unused job states beyond JOB_CACHE_IDLE (all: 0). */
static void
jobs_trim(size_t keep)
{
	struct jobref **pp = &dl.jobs, *j;
	size_t idle = 0;

	while ((j = *pp) != NULL) {
		if (j->refs == 0 && ++idle > keep) {
			*pp = j->next;
			karl_prepare_job_free(j->ctx);
			free(j);
			continue;
		}
		pp = &j->next;
	}
}

/* rcpt_domain - the lowercase domain of addr into out. */
static void
rcpt_domain(const char *addr, char *out, size_t outlen)
{
	const char *at = strrchr(addr, '@');
	size_t i;

	strlcpy_chk(out, at ? at + 1 : "", outlen);
	for (i = 0; out[i] != '\0'; i++)
		out[i] = (char)tolower((unsigned char)out[i]);
}

/* due - should receiver rec go out now?  1 deliver, 2 report, 0 not. */
static int
due(struct scan *sc, const json_t *rec)
{
	const char *st = rec_str(rec, F_KARL_STATE);
	time_t next = (time_t)rec_int(rec, R_NEXT);
	int kind;

	if (strcmp(st, F_KARL_SENT) == 0)
		return 0;
	if (strcmp(st, F_KARL_FAILED) == 0) {
		if (json_is_true(json_object_get(rec, R_REPORTED)))
			return 0;
		kind = 2;
	} else
		kind = 1;
	sc->pending++;
	if (next > sc->now) {
		if (sc->next_due == 0 || next < sc->next_due)
			sc->next_due = next;
		return 0;
	}
	return kind;
}

/* dom_limit - receivers of one domain out at once towards MX hosts: its
 * transactions and enough to keep them fed, so a domain that hangs does
 * not fill the queues. */
static int
dom_limit(void)
{
	return cfg.karl_domain_concurrency + 2 * dl.nworkers;
}

/* dispatch - hand w to the workers (dl.lock held). */
static void
dispatch(struct work *w)
{
	w->dom->out++;
	w->cost = karl_jobctx_size(w->job->ctx) + 4096;
	dl.out++;
	dl.out_bytes += w->cost;
	q_push(&dl.prep, w);
	metric_set(dl.m_queue, (int64_t)(dl.out - (size_t)dl.flying));
	pthread_cond_signal(&dl.prep_cv);
}

/* unpark - dispatch d's parked receivers while it and the total have room
 * (dl.lock held). */
static void
unpark(struct dom *d)
{
	while (d->parked.head != NULL && d->out < dom_limit() &&
	    dl.out < dl.max_out) {
		dl.parked--;
		dispatch(q_pop(&d->parked));
	}
}

/* unpark_all - unpark every domain (dl.lock held): the total bound may
 * have held them back when their own receivers completed. */
static void
unpark_all(void)
{
	struct dom *d;
	size_t i;

	if (dl.parked == 0)
		return;
	for (i = 0; i < DOM_BUCKETS; i++)
		for (d = dl.doms[i]; d != NULL; d = d->next)
			unpark(d);
}

/* thread_setup - name the calling thread (ps, perf, the tests) and,
 * unless it signs, make it SCHED_BATCH: the wake-ups of the scheduler,
 * the transport and the recorder (a reply, an outcome) then do not
 * preempt a signing worker mid-way; they run when a worker's slice ends
 * or a core is free, and find more work done at once (measured with 2
 * workers on 2 cores: the transport's CPU per copy halved, the workers'
 * involuntary switches down from 1.4 to 0.35 per copy). */
static void
thread_setup(const char *name, int batch)
{
	struct sched_param sp = { .sched_priority = 0 };

	(void)pthread_setname_np(pthread_self(), name);
	if (batch)
		(void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
}

/* scan_one - karl_scan_fn of the scheduler. */
static int
scan_one(void *ctx, const char *key, json_t *rec)
{
	struct scan *sc = ctx;
	char id[KARL_JOB_MAX + 1], domain[DNS_NAME_MAX + 1];
	struct work *w;
	struct dom *d;
	json_t *now_rec;
	int kind, park, fresh;

	if ((kind = due(sc, rec)) == 0)
		goto next;
	if (karl_job_of_key(key, id, sizeof(id)) == -1)
		goto next;
	rcpt_domain(rec_str(rec, F_KARL_TO), domain, sizeof(domain));
	pthread_mutex_lock(&dl.lock);
	if (dl.out >= dl.max_out || (dl.out > 0 &&
	    dl.out_bytes >= OUT_BYTES_MAX)) {
		pthread_mutex_unlock(&dl.lock);
		sc->full = 1;
		sc->pending--;		/* counted again when resumed */
		return 1;		/* resume at this key */
	}
	if (set_find(key) != NULL) {
		/* out or parked: its outcome wakes the scheduler if it must
		 * go again (dl.wake_at, dl.kicked) */
		pthread_mutex_unlock(&dl.lock);
		goto next;
	}
	d = dom_get(domain);
	park = kind == 1 && !dl.relay && !dl.maildir && d->out >= dom_limit();
	if (park && dl.parked >= PARK_MAX) {
		pthread_mutex_unlock(&dl.lock);
		sc->busy = 1;
		goto next;
	}
	/* not out, so any outcome of it is written; the scan's iterator saw
	 * every write done before it began, so when none was done since,
	 * its record is the one in the spool */
	fresh = dl.recorded == sc->seq;
	pthread_mutex_unlock(&dl.lock);
	if (fresh)
		now_rec = json_incref(rec);
	else if ((now_rec = karl_spool_rcpt(key)) == NULL)
		goto next;
	if (!fresh) {
		if (due(sc, now_rec) != kind) {
			json_decref(now_rec);
			goto next;
		}
		sc->pending--;		/* due() counted it twice */
	}
	w = xcalloc(1, sizeof(*w));
	strlcpy_chk(w->key, key, sizeof(w->key));
	w->rec = now_rec;
	w->report = kind == 2;
	pthread_mutex_lock(&dl.lock);
	if ((w->job = job_ref(id)) == NULL) {
		pthread_mutex_unlock(&dl.lock);
		json_decref(w->rec);
		free(w);
		goto next;
	}
	w->dom = dom_get(domain);
	w->snext = dl.set[hash(key) % SET_BUCKETS];
	dl.set[hash(key) % SET_BUCKETS] = w;
	if (park) {
		/* a full domain's receivers wait here, so the scan goes on
		 * to other domains without coming back for them */
		q_push(&w->dom->parked, w);
		dl.parked++;
		unpark(w->dom);
	} else
		dispatch(w);
	pthread_mutex_unlock(&dl.lock);
	sc->dispatched++;
next:
	strlcpy_chk(sc->cursor, key, sizeof(sc->cursor));
	return 0;
}

void
karl_deliver_run(void)
{
	struct scan sc;
	struct timespec ts;
	time_t last_prune = 0;
	int pass_busy = 0;
	size_t pass_sent = 0;
	int64_t pending = 0;

	memset(&sc, 0, sizeof(sc));
	thread_setup("karl-sched", 1);
	while (!dl.stop) {
		sc.now = time(NULL);
		if (sc.now - last_prune > 3600) {
			karl_spool_prune(sc.now);
			last_prune = sc.now;
		}
		sc.full = 0;
		pthread_mutex_lock(&dl.lock);
		sc.seq = dl.recorded;
		pthread_mutex_unlock(&dl.lock);
		if (karl_spool_scan(sc.cursor, scan_one, &sc) == -1)
			sleep(1);
		pass_busy |= sc.busy;
		pass_sent += sc.dispatched;
		pending += sc.pending;
		sc.busy = 0;
		sc.dispatched = 0;
		sc.pending = 0;
		pthread_mutex_lock(&dl.lock);
		unpark_all();
		if (sc.full) {
			/* no room: wait for a completion */
			while (!dl.stop && dl.out >= dl.max_out)
				pthread_cond_wait(&dl.sched_cv, &dl.lock);
			unpark_all();
			if (dl.out > 0 && dl.out_bytes >= OUT_BYTES_MAX &&
			    !dl.stop)
				pthread_cond_wait(&dl.sched_cv, &dl.lock);
			pthread_mutex_unlock(&dl.lock);
			continue;
		}
		/* end of a pass: start again at once if it found work, else
		 * sleep until a retry is due (one seen by the pass, or one of
		 * a receiver that was out), new receivers come in or (when
		 * the parking lot was full) a receiver completes */
		sc.cursor[0] = '\0';
		dl.spool_pending = pending + (int64_t)(dl.out + dl.parked);
		if (dl.wake_at != 0 && (sc.next_due == 0 ||
		    dl.wake_at < sc.next_due))
			sc.next_due = dl.wake_at;
		dl.wake_at = 0;
		jobs_trim(JOB_CACHE_IDLE);
		if (pass_sent == 0 && !dl.kicked && !dl.stop) {
			time_t until = sc.now + IDLE_WAIT;

			if (sc.next_due != 0 && sc.next_due < until)
				until = sc.next_due;
			if (pass_busy && sc.now + 1 < until)
				until = sc.now + 1;
			dl.completed = 0;
			for (;;) {
				time_t t = until;

				/* a receiver out meanwhile may be due sooner */
				if (dl.wake_at != 0 && dl.wake_at < t)
					t = dl.wake_at;
				if (dl.kicked || dl.stop || time(NULL) >= t ||
				    (pass_busy && dl.completed))
					break;
				ts.tv_sec = t;
				ts.tv_nsec = 0;
				pthread_cond_timedwait(&dl.sched_cv, &dl.lock,
				    &ts);
			}
		}
		dl.kicked = 0;
		pthread_mutex_unlock(&dl.lock);
		sc.next_due = 0;
		pass_busy = 0;
		pass_sent = 0;
		pending = 0;
	}
	pthread_mutex_lock(&dl.lock);
	pthread_cond_broadcast(&dl.prep_cv);
	pthread_cond_broadcast(&dl.xport_cv);
	pthread_cond_broadcast(&dl.record_cv);
	pthread_mutex_unlock(&dl.lock);
	if (dl.smtp != NULL)
		karl_smtp_wakeup(dl.smtp);
	for (int i = 0; i < dl.nworkers; i++)
		pthread_join(dl.workers[i], NULL);
	pthread_join(dl.xport, NULL);
	pthread_mutex_lock(&dl.lock);
	dl.xport_done = 1;
	pthread_cond_broadcast(&dl.record_cv);
	pthread_mutex_unlock(&dl.lock);
	pthread_join(dl.recorder, NULL);
}

void
karl_deliver_kick(void)
{
	pthread_mutex_lock(&dl.lock);
	dl.kicked = 1;
	pthread_cond_signal(&dl.sched_cv);
	pthread_mutex_unlock(&dl.lock);
}

void
karl_deliver_stop(void)
{
	pthread_mutex_lock(&dl.lock);
	dl.stop = 1;
	pthread_cond_broadcast(&dl.sched_cv);
	pthread_cond_broadcast(&dl.prep_cv);
	pthread_cond_broadcast(&dl.xport_cv);
	pthread_cond_broadcast(&dl.record_cv);
	pthread_mutex_unlock(&dl.lock);
	if (dl.smtp != NULL)
		karl_smtp_wakeup(dl.smtp);
}

/* ------------------------------------------------------------ workers */

/* set_outcome - w is decided before the transport. */
static void
set_outcome(struct work *w, int ok, int code, const char *diag)
{
	w->done = 1;
	w->ok = ok;
	w->code = code;
	snprintf(w->diag, sizeof(w->diag), "%s", diag ? diag : "");
}

/* enhanced_status - "5.1.1" from a reply line into out ("" if none). */
static void
enhanced_status(const char *diag, char *out, size_t outlen)
{
	const char *p = diag;
	size_t n;

	out[0] = '\0';
	while (isdigit((unsigned char)*p))
		p++;
	while (*p == ' ' || *p == '-')
		p++;
	if ((*p == '4' || *p == '5') && p[1] == '.') {
		n = strspn(p, "0123456789.");
		if (n >= 5 && n < outlen) {
			memcpy(out, p, n);
			out[n] = '\0';
		}
	}
}

/* report - tell messageserver that w failed for good. */
static void
report(struct work *w)
{
	char status[16];
	struct ms_bounce b;
	int rc, expired = json_is_true(json_object_get(w->rec, "expired"));

	enhanced_status(rec_str(w->rec, R_DIAG), status, sizeof(status));
	b.job = w->job->id;
	b.rcpt = rec_str(w->rec, F_KARL_TO);
	b.verp = rec_str(w->rec, F_KARL_VERP);
	b.code = expired ? 0 : (int)rec_int(w->rec, R_CODE);
	b.status = status[0] ? status : NULL;
	b.diagnostic = rec_str(w->rec, R_DIAG);
	rc = messageserver_clnt_bounce(dl.ms, &b);
	set_outcome(w, rc == MS_OK || rc == MS_REFUSED, 0, NULL);
	if (rc == MS_REFUSED)
		log_err("karl: job %s: messageserver refused the bounce of %s",
		    b.job, b.rcpt);
	else if (rc != MS_OK)
		log_warnx("karl: job %s: bounce of %s not reported yet", b.job,
		    b.rcpt);
}

/* mx_order - rotate each run of equal preferences in mx[0..n) by
 * attempts: RFC 5321 5.1 wants them spread, and a retry then starts at
 * another one of them.  Preferences themselves are kept in order. */
static void
mx_order(struct dns_mx *mx, size_t n, long long attempts)
{
	struct dns_mx tmp;
	size_t i, j, k, len, r;

	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && mx[j].pref == mx[i].pref; j++)
			;
		len = j - i;
		if (len < 2 || (r = (size_t)(attempts % (long long)len)) == 0)
			continue;
		for (k = 0; k < r; k++) {
			tmp = mx[i];
			memmove(&mx[i], &mx[i + 1], sizeof(*mx) * (len - 1));
			mx[j - 1] = tmp;
		}
	}
}

/* add_target - host at addr (text) as w's next target, if there is room. */
static void
add_target(struct work *w, const char *host, const char *addr)
{
	if (w->ntgt >= MX_ADDR_MAX)
		return;
	strlcpy_chk(w->tgt[w->ntgt].host, host, sizeof(w->tgt[0].host));
	strlcpy_chk(w->tgt[w->ntgt].addr, addr, sizeof(w->tgt[0].addr));
	w->ntgt++;
}

/* host_targets - the addresses of host (an MX, or the domain itself when
 * it has none) as w's next targets: A then AAAA, through dns.h (the
 * configured dns_resolver and the cache); an address literal as it is
 * (tests name 127.0.0.x as MX).  The lookup's result. */
static int
host_targets(struct work *w, const char *host)
{
	struct in_addr in4;
	struct dns_addr *a;
	char text[INET6_ADDRSTRLEN];
	size_t n, i;
	int rc;

	if (inet_pton(AF_INET, host, &in4) == 1) {
		add_target(w, host, host);
		return DNS_OK;
	}
	if ((rc = dns_addr(host, AF_UNSPEC, &a, &n)) != DNS_OK)
		return rc;
	for (i = 0; i < n; i++)
		if (inet_ntop(a[i].family, &a[i].u, text, sizeof(text)) != NULL)
			add_target(w, host, text);
	free(a);
	return DNS_OK;
}

/* route - where w goes: the relay; or every address of its domain's MX
 * hosts in preference order (at most MX_ADDR_MAX), or of the domain
 * itself when it has no MX (RFC 5321 5.1).  A domain, or all its MX
 * hosts, without any address record fails for good, as in Postfix (its
 * smtp_defer_if_no_mx_address_found = no); a DNS tempfail defers. */
static int
route(struct work *w)
{
	struct dns_mx *mx = NULL, implicit;
	char diag[DIAG_LEN];
	size_t n = 0, i, looked = 0;
	int rc, temp = 0;

	w->tgt = xcalloc(MX_ADDR_MAX, sizeof(*w->tgt));
	if (dl.relay) {
		add_target(w, cfg.karl_relay_host, "");
		w->port = cfg.karl_relay_port;
		return 0;
	}
	w->port = SMTP_PORT;
	rc = dns_mx(w->dom->name, &mx, &n);
	if (rc == DNS_BADNAME) {
		set_outcome(w, 0, 550, "550 5.1.2 bad destination domain");
		return -1;
	}
	if (rc == DNS_TEMPFAIL) {
		set_outcome(w, 0, 0, "MX lookup failed (tempfail)");
		return -1;
	}
	if (rc == DNS_OK && n == 1 && mx[0].host[0] == '\0') {
		free(mx);
		set_outcome(w, 0, 556, "556 5.1.10 domain accepts no mail "
		    "(null MX)");
		return -1;
	}
	if (rc == DNS_NXDOMAIN) {
		/* no MX: the domain is its own MX (the "implicit MX") */
		memset(&implicit, 0, sizeof(implicit));
		strlcpy_chk(implicit.host, w->dom->name, sizeof(implicit.host));
		mx = &implicit;
		n = 1;
	} else
		mx_order(mx, n, rec_int(w->rec, R_ATTEMPTS));
	for (i = 0; i < n && w->ntgt < MX_ADDR_MAX; i++) {
		if (mx[i].host[0] == '\0')
			continue;	/* a null MX among others: ignored */
		if (looked++ == MX_LOOKUP_MAX) {
			temp = 1;	/* more hosts than we look up */
			break;
		}
		if (host_targets(w, mx[i].host) == DNS_TEMPFAIL)
			temp = 1;
	}
	if (mx != &implicit)
		free(mx);
	if (w->ntgt > 0)
		return 0;
	if (temp) {
		snprintf(diag, sizeof(diag), "%s lookup failed (tempfail)",
		    rc == DNS_NXDOMAIN ? "A/AAAA" : "MX host A/AAAA");
		set_outcome(w, 0, 0, diag);
	} else if (rc == DNS_NXDOMAIN)
		set_outcome(w, 0, 550, "550 5.1.2 domain has no MX, A or AAAA "
		    "record (no such domain)");
	else
		set_outcome(w, 0, 550, "550 5.4.4 no A or AAAA record for any "
		    "MX host of the domain");
	return -1;
}

/* prepare - w's message, or its outcome when it cannot go. */
static void
prepare(struct work *w)
{
	char err[256];

	if (karl_prepare_message(w->job->ctx, w->rec, &w->msg, &w->len,
	    &w->mail_from, err, sizeof(err)) == -1) {
		log_err("karl: job %s: %s: %s", w->job->id,
		    rec_str(w->rec, F_KARL_TO), err);
		set_outcome(w, 0, 554, err);
		return;
	}
	if (!dl.maildir)
		route(w);
}

static void *
worker_main(void *arg)
{
	struct work *w;
	int wake;

	(void)arg;
	thread_setup("karl-worker", 0);
	for (;;) {
		pthread_mutex_lock(&dl.lock);
		while (!dl.stop && dl.prep.head == NULL)
			pthread_cond_wait(&dl.prep_cv, &dl.lock);
		if (dl.stop) {
			pthread_mutex_unlock(&dl.lock);
			return NULL;
		}
		w = q_pop(&dl.prep);
		pthread_mutex_unlock(&dl.lock);
		if (w->report)
			report(w);
		else
			prepare(w);
		pthread_mutex_lock(&dl.lock);
		q_push(&dl.ready, w);
		pthread_cond_signal(&dl.xport_cv);
		/* a busy transport finds it on its next round anyway */
		wake = dl.xport_idle;
		dl.xport_idle = 0;
		pthread_mutex_unlock(&dl.lock);
		if (wake && dl.smtp != NULL)
			karl_smtp_wakeup(dl.smtp);
	}
}

/* ---------------------------------------------------------- transport */

static struct queue xp_pending;		/* transport thread only */
static struct queue xp_done;
static int xp_again;			/* a work went back to pending */

/* smtp_done - karl_smtp_done_fn: the transaction of arg ended. */
static void
smtp_done(void *arg, int ok, int code, const char *diag)
{
	struct work *w = arg;

	pthread_mutex_lock(&dl.lock);
	dl.flying--;
	w->dom->flying--;
	pthread_mutex_unlock(&dl.lock);
	if (!ok && code == 0 && w->itgt + 1 < w->ntgt && !dl.stop) {
		/* no connection or no answer: the next address, now */
		w->itgt++;
		log_info("karl: job %s: %s: %s; trying %s [%s]", w->job->id,
		    rec_str(w->rec, F_KARL_TO), diag, w->tgt[w->itgt].host,
		    w->tgt[w->itgt].addr);
		q_push(&xp_pending, w);
		xp_again = 1;
		return;
	}
	set_outcome(w, ok, code, diag);
	q_push(&xp_done, w);
}

/* new_record - w's receiver record after its outcome: w->rec changed in
 * place (nothing reads the old one: w goes after its write, whatever
 * comes of it) and returned borrowed; *final, *sent for the job
 * counters. */
static json_t *
new_record(struct work *w, time_t now, int *final, int *sent)
{
	json_t *r = w->rec;
	long long attempts = rec_int(r, R_ATTEMPTS);
	time_t created = karl_jobctx_created(w->job->ctx);

	*final = *sent = 0;
	if (w->report) {
		if (w->ok) {
			json_object_set_new(r, R_REPORTED, json_true());
			*final = 1;
		} else
			json_object_set_new(r, R_NEXT,
			    json_integer(now + (cfg.karl_retry_min < REPORT_RETRY ?
			    cfg.karl_retry_min : REPORT_RETRY)));
		return r;
	}
	json_object_set_new(r, R_ATTEMPTS, json_integer(attempts + 1));
	json_object_set_new(r, R_CODE, json_integer(w->code));
	json_object_set_new(r, R_DIAG, json_string(w->diag));
	json_object_del(r, R_NEXT);
	if (w->ok) {
		json_object_set_new(r, F_KARL_STATE, json_string(F_KARL_SENT));
		json_object_del(r, R_DIAG);
		*final = *sent = 1;
	} else if (w->code / 100 == 5) {
		json_object_set_new(r, F_KARL_STATE,
		    json_string(F_KARL_FAILED));
		json_object_set_new(r, R_REPORTED, json_false());
	} else if (now - created >= cfg.karl_max_age) {
		json_object_set_new(r, F_KARL_STATE,
		    json_string(F_KARL_FAILED));
		json_object_set_new(r, R_REPORTED, json_false());
		json_object_set_new(r, "expired", json_true());
	} else {
		json_object_set_new(r, F_KARL_STATE,
		    json_string(F_KARL_DEFERRED));
		json_object_set_new(r, R_NEXT,
		    json_integer(now + backoff(attempts + 1)));
	}
	if (!json_is_string(json_object_get(r, R_DIAG)) ||
	    json_string_value(json_object_get(r, R_DIAG)) == NULL)
		json_object_set_new(r, R_DIAG, json_string(""));
	return r;
}

/* flush - record the outcomes in q in one synced write, then let their
 * receivers go. */
static void
flush(struct queue *q)
{
	struct karl_outcome *o;
	json_t **recs;
	struct work *w;
	time_t now = time(NULL);
	size_t n = q->n, i;
	int rc;

	if (n == 0)
		return;
	o = xcalloc(n, sizeof(*o));
	recs = xcalloc(n, sizeof(*recs));
	for (i = 0, w = q->head; w != NULL; w = w->next, i++) {
		log_utf8_fix(w->diag);
		recs[i] = new_record(w, now, &o[i].final, &o[i].sent);
		o[i].key = w->key;
		o[i].rec = recs[i];
	}
	rc = karl_spool_record(o, n, now);
	pthread_mutex_lock(&dl.lock);
	dl.recorded++;
	for (i = 0; (w = q_pop(q)) != NULL; i++) {
		const char *st = rec_str(recs[i], F_KARL_STATE);
		time_t next = (time_t)rec_int(recs[i], R_NEXT);

		/* the scan skipped it while it was out: say when it is due */
		if (rc != 0 || (strcmp(st, F_KARL_FAILED) == 0 &&
		    !json_is_true(json_object_get(recs[i], R_REPORTED))))
			next = now;
		if (next != 0 && (dl.wake_at == 0 || next < dl.wake_at))
			dl.wake_at = next;

		if (rc == 0 && !w->report) {
			/* on a failed write the receiver stays as it was
			 * and goes again: a duplicate, never a loss */
			if (w->ok) {
				metric_add(dl.m_sent, 1);
				metric_add(w->dom->m_sent, 1);
				w->dom->sent++;
			} else if (strcmp(st, F_KARL_FAILED) == 0) {
				metric_add(dl.m_failed, 1);
				metric_add(w->dom->m_failed, 1);
				w->dom->failed++;
			} else {
				metric_add(dl.m_deferred, 1);
				metric_add(w->dom->m_deferred, 1);
				w->dom->deferred++;
			}
			if (!w->ok)
				log_info("karl: job %s: %s %s (%d): %s",
				    w->job->id, rec_str(w->rec, F_KARL_TO),
				    st, w->code, w->diag);
		} else if (rc == 0 && w->ok)
			metric_add(dl.m_reported, 1);
		set_del(w);
		w->dom->out--;
		unpark(w->dom);
		dom_release(w->dom);
		w->job->refs--;
		dl.out--;
		dl.out_bytes -= w->cost;
		json_decref(w->rec);
		free(w->msg);
		free(w->tgt);
		free(w->mail_from);
		free(w);
	}
	metric_set(dl.m_queue, (int64_t)(dl.out - (size_t)dl.flying));
	metric_set(dl.m_flying, dl.flying);
	dl.completed = 1;
	pthread_cond_broadcast(&dl.sched_cv);
	pthread_mutex_unlock(&dl.lock);
	free(recs);
	free(o);
}

/* start - begin w's delivery if its limits allow; 0 started or decided,
 * 1 must wait. */
static int
start(struct work *w)
{
	struct karl_smtp_msg m;
	char err[256];

	if (w->done) {
		q_push(&xp_done, w);
		return 0;
	}
	if (dl.maildir) {
		if (karl_maildir_deliver(cfg.karl_maildir,
		    rec_str(w->rec, F_KARL_TO), w->mail_from, w->msg, w->len,
		    err, sizeof(err)) == -1)
			set_outcome(w, 0, 0, err);
		else
			set_outcome(w, 1, 250, "maildir");
		q_push(&xp_done, w);
		return 0;
	}
	pthread_mutex_lock(&dl.lock);
	if (dl.flying >= cfg.karl_concurrency || (!dl.relay &&
	    w->dom->flying >= cfg.karl_domain_concurrency)) {
		pthread_mutex_unlock(&dl.lock);
		return 1;
	}
	dl.flying++;
	w->dom->flying++;
	pthread_mutex_unlock(&dl.lock);
	m.host = w->tgt[w->itgt].host;
	m.addr = w->tgt[w->itgt].addr[0] != '\0' ? w->tgt[w->itgt].addr :
	    NULL;
	m.port = w->port;
	m.mail_from = w->mail_from;
	m.rcpt = rec_str(w->rec, F_KARL_TO);
	m.data = w->msg;
	m.len = w->len;
	m.arg = w;
	if (karl_smtp_start(dl.smtp, &m) == -1) {
		pthread_mutex_lock(&dl.lock);
		dl.flying--;
		w->dom->flying--;
		pthread_mutex_unlock(&dl.lock);
		set_outcome(w, 0, 0, "cannot start the SMTP transaction");
		q_push(&xp_done, w);
	}
	return 0;
}

static void *
xport_main(void *arg)
{
	struct queue wait;
	struct timespec ts;
	struct work *w;
	int idle;

	(void)arg;
	thread_setup("karl-smtp", 1);
	while (!dl.stop) {
		pthread_mutex_lock(&dl.lock);
		if (dl.maildir && dl.ready.head == NULL && !dl.stop) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&dl.xport_cv, &dl.lock, &ts);
		}
		while ((w = q_pop(&dl.ready)) != NULL)
			q_push(&xp_pending, w);
		pthread_mutex_unlock(&dl.lock);
		/* in order, skipping those whose domain is full */
		memset(&wait, 0, sizeof(wait));
		while ((w = q_pop(&xp_pending)) != NULL)
			if (start(w) == 1)
				q_push(&wait, w);
		xp_pending = wait;
		if (!dl.maildir) {
			pthread_mutex_lock(&dl.lock);
			metric_set(dl.m_flying, dl.flying);
			/* idle: a worker with a copy ready must wake us */
			dl.xport_idle = xp_done.n == 0 && !xp_again &&
			    dl.ready.head == NULL;
			idle = dl.xport_idle;
			pthread_mutex_unlock(&dl.lock);
			karl_smtp_poll(dl.smtp, idle ? 1000 : 0);
			pthread_mutex_lock(&dl.lock);
			dl.xport_idle = 0;
			pthread_mutex_unlock(&dl.lock);
			xp_again = 0;
		}
		if (xp_done.n > 0) {
			pthread_mutex_lock(&dl.lock);
			while ((w = q_pop(&xp_done)) != NULL)
				q_push(&dl.record, w);
			pthread_cond_signal(&dl.record_cv);
			pthread_mutex_unlock(&dl.lock);
		}
	}
	return NULL;
}

/* recorder_main - the recorder thread: every outcome that came in while
 * the last synced write ran goes into the next one (group commit), so
 * the transport never waits for the disk. */
static void *
recorder_main(void *arg)
{
	struct queue q;
	struct work *w;

	(void)arg;
	thread_setup("karl-record", 1);
	for (;;) {
		pthread_mutex_lock(&dl.lock);
		while (!dl.xport_done && dl.record.head == NULL)
			pthread_cond_wait(&dl.record_cv, &dl.lock);
		/* at a stop, what was delivered is recorded first */
		if (dl.xport_done && dl.record.head == NULL) {
			pthread_mutex_unlock(&dl.lock);
			return NULL;
		}
		memset(&q, 0, sizeof(q));
		while ((w = q_pop(&dl.record)) != NULL)
			q_push(&q, w);
		pthread_mutex_unlock(&dl.lock);
		/* a few outcomes: let more come, so each write (and each
		 * job record it rewrites) carries many */
		if (q.n < RECORD_BATCH && !dl.xport_done) {
			nanosleep(&(struct timespec){ 0, RECORD_WAIT_NS },
			    NULL);
			pthread_mutex_lock(&dl.lock);
			while ((w = q_pop(&dl.record)) != NULL)
				q_push(&q, w);
			pthread_mutex_unlock(&dl.lock);
		}
		flush(&q);
	}
}

/* ------------------------------------------------------------- set-up */

int
karl_deliver_init(void)
{
	char *url;

	if (karl_prepare_init() == -1)
		return -1;
	dl.maildir = strcmp(cfg.karl_transport, "maildir") == 0;
	dl.relay = cfg.karl_relay_host != NULL && *cfg.karl_relay_host != '\0';
	dl.nworkers = cfg.karl_workers;
	dl.max_out = (size_t)cfg.karl_concurrency * 4 +
	    (size_t)dl.nworkers * 4;
	dl.rnd = (uint64_t)time(NULL) * 2654435761u | 1;
	if (!dl.maildir &&
	    (dl.smtp = karl_smtp_new(cfg.karl_concurrency, smtp_done)) == NULL)
		return -1;
	url = config_url(&cfg, cfg.messageserver_port);
	dl.ms = messageserver_clnt_new(url, daemon_api_secret,
	    cfg.http_timeout_ms);
	free(url);
	dl.m_sent = metric_counter("karl_sent_total",
	    "receivers delivered (2xx)", NULL);
	dl.m_deferred = metric_counter("karl_deferred_total",
	    "delivery attempts failed for now (4xx, no connection)", NULL);
	dl.m_failed = metric_counter("karl_failed_total",
	    "receivers failed for good (5xx, too old)", NULL);
	dl.m_reported = metric_counter("karl_bounces_reported_total",
	    "failures reported to messageserver", NULL);
	dl.m_queue = metric_gauge("karl_queue_depth",
	    "receivers taken from the spool, not yet in flight", NULL);
	dl.m_flying = metric_gauge("karl_in_flight",
	    "SMTP transactions in flight", NULL);
	dl.workers = xcalloc((size_t)dl.nworkers, sizeof(*dl.workers));
	for (int i = 0; i < dl.nworkers; i++)
		if (pthread_create(&dl.workers[i], NULL, worker_main, NULL))
			fatalx("karl: cannot start a worker thread");
	if (pthread_create(&dl.xport, NULL, xport_main, NULL) ||
	    pthread_create(&dl.recorder, NULL, recorder_main, NULL))
		fatalx("karl: cannot start the transport threads");
	log_info("karl: delivering by %s%s%s, %d workers, %d at once",
	    dl.maildir ? "maildir to " : dl.relay ? "SMTP to relay " :
	    "SMTP to each domain's MX", dl.maildir ? cfg.karl_maildir :
	    dl.relay ? cfg.karl_relay_host : "", "", dl.nworkers,
	    cfg.karl_concurrency);
	return 0;
}

void
karl_deliver_fini(void)
{
	struct work *w;
	struct dom *d;
	size_t i;

	/* what is still out was not recorded: it goes again next start */
	dl.smtp = karl_smtp_free(dl.smtp);
	while ((w = q_pop(&dl.prep)) != NULL)
		q_push(&xp_done, w);
	while ((w = q_pop(&dl.ready)) != NULL)
		q_push(&xp_done, w);
	while ((w = q_pop(&xp_pending)) != NULL)
		q_push(&xp_done, w);
	while ((w = q_pop(&dl.record)) != NULL)
		q_push(&xp_done, w);
	while ((w = q_pop(&xp_done)) != NULL) {
		json_decref(w->rec);
		free(w->msg);
		free(w->tgt);
		free(w->mail_from);
		free(w);
	}
	for (struct jobref *j = dl.jobs, *nj; j != NULL; j = nj) {
		nj = j->next;
		karl_prepare_job_free(j->ctx);
		free(j);
	}
	dl.jobs = NULL;
	for (i = 0; i < DOM_BUCKETS; i++)
		while ((d = dl.doms[i]) != NULL) {
			dl.doms[i] = d->next;
			while ((w = q_pop(&d->parked)) != NULL) {
				json_decref(w->rec);
				free(w);
			}
			free(d);
		}
	dl.ms = messageserver_clnt_free(dl.ms);
	free(dl.workers);
	dl.workers = NULL;
	karl_prepare_fini();
}

json_t *
karl_deliver_stats(void)
{
	json_t *doms = json_object(), *j;
	struct dom *d;
	size_t i;

	pthread_mutex_lock(&dl.lock);
	for (i = 0; i < DOM_BUCKETS; i++)
		for (d = dl.doms[i]; d != NULL; d = d->next)
			json_object_set_new(doms, d->name, json_pack(
			    "{s:I, s:I, s:I, s:i, s:I, s:i}", F_KARL_SENT,
			    (json_int_t)d->sent, F_KARL_DEFERRED,
			    (json_int_t)d->deferred, F_KARL_FAILED,
			    (json_int_t)d->failed, "out", d->out, "parked",
			    (json_int_t)d->parked.n, "in_flight", d->flying));
	j = json_pack("{s:I, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}",
	    "queue", (json_int_t)(dl.out - (size_t)dl.flying), "in_flight",
	    dl.flying, "out", (json_int_t)dl.out, "parked",
	    (json_int_t)dl.parked, "spool_pending",
	    (json_int_t)dl.spool_pending, F_KARL_SENT,
	    (json_int_t)metric_value(dl.m_sent), F_KARL_DEFERRED,
	    (json_int_t)metric_value(dl.m_deferred), F_KARL_FAILED,
	    (json_int_t)metric_value(dl.m_failed), "reported",
	    (json_int_t)metric_value(dl.m_reported), "domains", doms);
	pthread_mutex_unlock(&dl.lock);
	return j;
}

/* karl_stats_handler - GET /v1/stats. */
int
karl_stats_handler(struct httpd_req *req)
{
	return httpd_reply_json(req, 200, karl_deliver_stats());
}
