/* SPDX-License-Identifier: MIT */
/*
 * messageserver_commit.c - group commit: the requests that wait for the
 * database share one transaction, and each is answered after its COMMIT.
 *
 * Handlers queue a job (messageserver_commit_submit) and return; their
 * HTTP connection is parked (httpd_defer), so no server thread waits.
 * MS_COMMIT_THREADS committer threads each take every queued job (at most
 * MS_COMMIT_BATCH), BEGIN, run them one after the other on one connection,
 * COMMIT, and only then call each job's done(0), which answers it.  One
 * WAL flush, one BEGIN and one COMMIT serve the whole batch, and the row
 * a group's posts all update (group_counters) is locked once per batch,
 * not once per post.  Running the jobs in order inside one transaction is
 * the same as running them one by one: each sees what the earlier ones
 * wrote (a Message-ID twice in one batch is a duplicate the second time).
 *
 * A job that fails (a database error, say a concurrent delivery of the
 * same Message-ID) must not fail the others: the batch is rolled back, and
 * every job of it runs again alone, in a transaction of its own, as if
 * there had been no batch (and once more if that fails, see alone());
 * only a job that fails alone is answered with its failure (503: smtpd
 * says 451, nothing was stored).  A COMMIT that
 * fails is handled the same way.  Nothing is acknowledged before its
 * COMMIT returned, so a kill -9 loses only unanswered requests, which
 * smtpd and the sending MTA retry (Message-ID de-duplication makes a
 * retry of a commit whose answer was lost a "duplicate").
 */
#include <pthread.h>
#include <stdlib.h>

#include "daemon.h"
#include "db.h"
#include "log.h"
#include "messageserver.h"
#include "metrics.h"
#include "xalloc.h"

struct job {
	struct job			*next;
	const struct ms_commit_ops	*ops;
	void				*arg;
};

static struct {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct job	*head, *tail;
	int		 stopping;
	pthread_t	 thr[MS_COMMIT_THREADS];
	int		 nthr;
	struct metric	*batches, *jobs, *retried, *waiting;
} C = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.cv = PTHREAD_COND_INITIALIZER,
};

void
messageserver_commit_submit(const struct ms_commit_ops *ops, void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->ops = ops;
	j->arg = arg;
	metric_add(C.waiting, 1);
	pthread_mutex_lock(&C.mu);
	if (C.tail != NULL)
		C.tail->next = j;
	else
		C.head = j;
	C.tail = j;
	pthread_cond_signal(&C.cv);
	pthread_mutex_unlock(&C.mu);
}

/* alone - j in a transaction of its own; 0 or -1.  A job that fails is
 * run once more: both committers may run a job alone at the same time
 * (each took a single job, or reruns a failed batch), and the same
 * Message-ID in both passes both duplicate checks, so one waits on the
 * other's insert and fails with a unique violation once it commits; run
 * again, it finds the row and is a duplicate, as it would have been one
 * after the other.  A job that fails for its own reason fails twice. */
static int
alone(struct db *d, struct job *j)
{
	int try;

	for (try = 0; try < 2; try++) {
		if (try > 0)
			j->ops->reset(j->arg);
		if (db_begin(d) == -1)
			return -1;
		if (j->ops->run(d, j->arg) == 0 && db_commit(d) == 0)
			return 0;
		db_rollback(d);
	}
	return -1;
}

/* batch - run jobs[0..n) in one transaction; on any failure roll back
 * and run each alone.  Every job's done is called exactly once. */
static void
batch(struct job **jobs, size_t n)
{
	struct db *d = db_get(daemon_db);
	size_t i;
	int rc = d == NULL ? -1 : 0;

	metric_add(C.batches, 1);
	metric_add(C.jobs, (int64_t)n);
	if (rc == 0 && n > 1) {
		rc = db_begin(d);
		for (i = 0; rc == 0 && i < n; i++)
			rc = jobs[i]->ops->run(d, jobs[i]->arg);
		if (rc == 0)
			rc = db_commit(d);
		if (rc == 0) {
			db_put(daemon_db, d);
			for (i = 0; i < n; i++)
				jobs[i]->ops->done(jobs[i]->arg, 0);
			return;
		}
		db_rollback(d);
		log_warnx("messageserver: a batch of %zu failed; each is "
		    "tried alone", n);
		metric_add(C.retried, (int64_t)n);
		for (i = 0; i < n; i++)
			jobs[i]->ops->reset(jobs[i]->arg);
		rc = 0;
	}
	for (i = 0; i < n; i++) {
		int r = rc == -1 ? -1 : alone(d, jobs[i]);

		if (r == -1)
			jobs[i]->ops->reset(jobs[i]->arg);
		jobs[i]->ops->done(jobs[i]->arg, r);
	}
	db_put(daemon_db, d);
}

static void *
committer(void *arg)
{
	struct job *jobs[MS_COMMIT_BATCH], *j;
	size_t n, i;

	(void)arg;
	pthread_mutex_lock(&C.mu);
	for (;;) {
		while (C.head == NULL && !C.stopping)
			pthread_cond_wait(&C.cv, &C.mu);
		if (C.head == NULL)
			break;		/* stopping, and nothing left */
		for (n = 0; n < MS_COMMIT_BATCH && (j = C.head) != NULL; n++) {
			if ((C.head = j->next) == NULL)
				C.tail = NULL;
			jobs[n] = j;
		}
		pthread_mutex_unlock(&C.mu);
		batch(jobs, n);
		for (i = 0; i < n; i++)
			free(jobs[i]);
		metric_add(C.waiting, -(int64_t)n);
		pthread_mutex_lock(&C.mu);
	}
	pthread_mutex_unlock(&C.mu);
	return NULL;
}

int
messageserver_commit_start(void)
{
	C.batches = metric_counter("messageserver_commit_batches_total",
	    "transactions of the group commit", NULL);
	C.jobs = metric_counter("messageserver_commit_jobs_total",
	    "requests committed or failed by the group commit", NULL);
	C.retried = metric_counter("messageserver_commit_retried_total",
	    "requests run again alone after their batch failed", NULL);
	C.waiting = metric_gauge("messageserver_commit_waiting",
	    "requests queued or in a transaction, not yet answered", NULL);
	C.stopping = 0;
	for (C.nthr = 0; C.nthr < MS_COMMIT_THREADS; C.nthr++)
		if (pthread_create(&C.thr[C.nthr], NULL, committer, NULL) !=
		    0) {
			log_err("messageserver: cannot start the committers");
			return -1;
		}
	return 0;
}

void
messageserver_commit_stop(void)
{
	int i;

	pthread_mutex_lock(&C.mu);
	C.stopping = 1;
	pthread_cond_broadcast(&C.cv);
	pthread_mutex_unlock(&C.mu);
	/* what is queued still runs: its requests wait for an answer */
	for (i = 0; i < C.nthr; i++)
		pthread_join(C.thr[i], NULL);
	C.nthr = 0;
}
