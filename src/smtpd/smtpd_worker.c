/* SPDX-License-Identifier: MIT */
/*
 * smtpd_worker.c - a small fixed pool of threads that run smtpd's blocking
 * calls (messageserver's /v1/rcpt and /v1/inbound) off the event loop.
 *
 * Jobs wait in a FIFO under one mutex.  When a job's work is done, the
 * worker activates the job's event, so its done callback runs on the event
 * loop's thread (libevent is in pthreads mode: event_active is safe from
 * any thread).  The queue is bounded in practice by smtpd_max_conns: a
 * session has at most one job in flight.
 */
#include <pthread.h>
#include <stdlib.h>

#include <event2/event.h>

#include "log.h"
#include "smtpd.h"
#include "xalloc.h"

#define WORKER_MAX	64

struct job {
	struct job	*next;
	smtpd_job_fn	 work;
	smtpd_job_fn	 done;
	void		*arg;
	struct event	*ev;
};

static pthread_mutex_t	 wk_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 wk_cond = PTHREAD_COND_INITIALIZER;
static struct job	*wk_head, *wk_tail;
static int		 wk_stop;
static pthread_t	 wk_threads[WORKER_MAX];
static int		 wk_n;
static struct event_base *wk_base;

/* job_done - on the loop: the job's done callback, then free the job. */
static void
job_done(evutil_socket_t fd, short what, void *arg)
{
	struct job *j = arg;

	(void)fd;
	(void)what;
	j->done(j->arg);
	event_free(j->ev);
	free(j);
}

static void *
worker_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct job *j;

		pthread_mutex_lock(&wk_lock);
		while (wk_head == NULL && !wk_stop)
			pthread_cond_wait(&wk_cond, &wk_lock);
		if (wk_stop) {
			pthread_mutex_unlock(&wk_lock);
			return NULL;
		}
		j = wk_head;
		if ((wk_head = j->next) == NULL)
			wk_tail = NULL;
		pthread_mutex_unlock(&wk_lock);
		j->work(j->arg);
		event_active(j->ev, EV_TIMEOUT, 0);
	}
}

int
smtpd_worker_start(struct event_base *base, int n)
{
	wk_base = base;
	if (n > WORKER_MAX)
		n = WORKER_MAX;
	for (wk_n = 0; wk_n < n; wk_n++)
		if (pthread_create(&wk_threads[wk_n], NULL, worker_main,
		    NULL) != 0) {
			log_err("smtpd: cannot start worker threads");
			return -1;
		}
	return 0;
}

/* smtpd_worker_submit - queue a job; called on the loop's thread. */
void
smtpd_worker_submit(smtpd_job_fn work, smtpd_job_fn done, void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->work = work;
	j->done = done;
	j->arg = arg;
	if ((j->ev = event_new(wk_base, -1, 0, job_done, j)) == NULL)
		panic("smtpd: event_new failed");
	pthread_mutex_lock(&wk_lock);
	if (wk_tail != NULL)
		wk_tail->next = j;
	else
		wk_head = j;
	wk_tail = j;
	pthread_cond_signal(&wk_cond);
	pthread_mutex_unlock(&wk_lock);
}

/* smtpd_worker_stop - join the workers; queued jobs are dropped (the
 * process is exiting and their sessions die with it). */
void
smtpd_worker_stop(void)
{
	int i;

	pthread_mutex_lock(&wk_lock);
	wk_stop = 1;
	pthread_cond_broadcast(&wk_cond);
	pthread_mutex_unlock(&wk_lock);
	for (i = 0; i < wk_n; i++)
		pthread_join(wk_threads[i], NULL);
	wk_n = 0;
	while (wk_head != NULL) {
		struct job *j = wk_head;

		wk_head = j->next;
		event_free(j->ev);
		free(j);
	}
	wk_tail = NULL;
}
