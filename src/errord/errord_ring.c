/* SPDX-License-Identifier: MIT */
/*
 * errord_ring.c - recent committed events in memory, for tail -f.
 *
 * After each group commit the writer copies the new events (decoded event
 * and stored line) into a ring of errord_ring entries indexed by seq, moves
 * the committed horizon (last seq, current file and its committed size)
 * and wakes every follower.  A follower keeps the next seq it wants and
 * reads from the ring inside its stream callback; one that fell out of the
 * ring gets a synthetic "N events skipped" line and goes on.
 *
 * Two locks: R.mu guards the ring and the horizon (taken inside a stream's
 * lock by the stream callback); R.fmu guards the follower list and is held
 * while waking streams, never together with R.mu, so no lock cycle exists.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_proto.h"
#include "errord.h"
#include "log.h"
#include "metrics.h"

/* Memory of an entry: the line, and its decoded tree at about twice. */
#define ENT_BYTES(len)	(3 * (len) + 256)

struct ring_ent {
	uint64_t	 seq;
	json_t		*ev;
	char		*line;		/* with its newline */
	size_t		 len;
};

static struct {
	pthread_mutex_t	 mu;
	struct ring_ent	*ents;
	size_t		 cap;
	size_t		 count;
	size_t		 bytes;		/* estimated memory of the entries */
	uint64_t	 last;		/* last committed seq */
	uint64_t	 file_seq;
	off_t		 file_size;
	int		 stopping;
	uint64_t	 beat;		/* heartbeat generation */
	pthread_mutex_t	 fmu;
	struct errord_follower *followers;
} R = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.fmu = PTHREAD_MUTEX_INITIALIZER,
};

/* errord_ring_init - room for cap events. */
void
errord_ring_init(size_t cap)
{
	R.cap = cap > 0 ? cap : 1;
	R.ents = xcalloc(R.cap, sizeof(*R.ents));
	R.count = 0;
}

/* errord_ring_fini - free the entries (followers are gone by now). */
void
errord_ring_fini(void)
{
	size_t	 i;

	pthread_mutex_lock(&R.mu);
	for (i = 0; R.ents != NULL && i < R.cap; i++) {
		json_decref(R.ents[i].ev);
		free(R.ents[i].line);
	}
	free(R.ents);
	R.ents = NULL;
	R.count = 0;
	pthread_mutex_unlock(&R.mu);
}

/* errord_ring_horizon - the committed state found at start. */
void
errord_ring_horizon(uint64_t last_seq, uint64_t file_seq, off_t file_size)
{
	pthread_mutex_lock(&R.mu);
	R.last = last_seq;
	R.file_seq = file_seq;
	R.file_size = file_size;
	pthread_mutex_unlock(&R.mu);
}

/* wake_all - resume every parked follower. */
static void
wake_all(void)
{
	struct errord_follower *f;

	pthread_mutex_lock(&R.fmu);
	for (f = R.followers; f != NULL; f = f->next)
		httpd_stream_wake(f->stream);
	pthread_mutex_unlock(&R.fmu);
}

/* errord_ring_commit - publish a commit group (copies lines, increfs
 * events), then wake the followers. */
void
errord_ring_commit(json_t *const *evs, uint64_t first_seq, size_t n,
    const char *lines, const size_t *offs, uint64_t file_seq,
    off_t file_size)
{
	struct ring_ent *fresh, *old;
	size_t	 i, skip, nold = 0;

	/* Only the last cap events of a group can stay in the ring. */
	skip = n > R.cap ? n - R.cap : 0;
	fresh = xcalloc(n - skip + 1, sizeof(*fresh));
	old = xcalloc(n - skip + 1, sizeof(*old));
	for (i = skip; i < n; i++) {
		fresh[i - skip].seq = first_seq + i;
		fresh[i - skip].ev = json_incref(evs[i]);
		fresh[i - skip].len = offs[i + 1] - offs[i];
		fresh[i - skip].line = xmalloc(fresh[i - skip].len);
		memcpy(fresh[i - skip].line, lines + offs[i],
		    fresh[i - skip].len);
	}
	pthread_mutex_lock(&R.mu);
	for (i = 0; i < n - skip; i++) {
		struct ring_ent *e = &R.ents[fresh[i].seq % R.cap];

		if (e->line != NULL) {
			R.bytes -= ENT_BYTES(e->len);
			old[nold++] = *e;
		}
		*e = fresh[i];
		R.bytes += ENT_BYTES(e->len);
	}
	R.count += n - skip;
	if (R.count > R.cap)
		R.count = R.cap;
	/* Large events: keep the ring within its memory budget too. */
	while (R.bytes > ERRORD_RING_MAX_BYTES && R.count > 1) {
		struct ring_ent *e = &R.ents[(first_seq + n - R.count) %
		    R.cap];

		R.bytes -= ENT_BYTES(e->len);
		json_decref(e->ev);
		free(e->line);
		memset(e, 0, sizeof(*e));
		R.count--;
	}
	if (n > 0)
		R.last = first_seq + n - 1;
	R.file_seq = file_seq;
	R.file_size = file_size;
	pthread_mutex_unlock(&R.mu);
	for (i = 0; i < nold; i++) {
		json_decref(old[i].ev);
		free(old[i].line);
	}
	free(old);
	free(fresh);
	wake_all();
}

/* errord_ring_snapshot - the committed horizon. */
void
errord_ring_snapshot(uint64_t *last_seq, uint64_t *file_seq,
    off_t *file_size)
{
	pthread_mutex_lock(&R.mu);
	*last_seq = R.last;
	*file_seq = R.file_seq;
	*file_size = R.file_size;
	pthread_mutex_unlock(&R.mu);
}

/* skipped_line - the synthetic line telling a follower what it missed. */
static void
skipped_line(struct strbuf *out, uint64_t n)
{
	char	 now[40], host[256];

	log_now_rfc3339(now, sizeof(now));
	if (gethostname(host, sizeof(host)) < 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	strbuf_appendf(out, "{\"%s\":\"%s\",\"%s\":\"errord\",\"%s\":%ld,"
	    "\"%s\":\"warn\",\"%s\":\"%" PRIu64 " events skipped (the "
	    "follower fell behind the ring)\"}\n", F_EV_TIME, now, F_EV_DAEMON,
	    F_EV_PID, (long)getpid(), F_EV_LEVEL, F_EV_MESSAGE, n);
}

/* errord_ring_read - lines for a follower at *next. */
ssize_t
errord_ring_read(uint64_t *next, uint64_t *beat,
    const struct errord_tail_query *q, struct strbuf *out, size_t max)
{
	size_t	 before = out->len;
	uint64_t first, skipped = 0;
	struct ring_ent *e;

	pthread_mutex_lock(&R.mu);
	if (R.stopping) {
		pthread_mutex_unlock(&R.mu);
		return -1;
	}
	first = R.last + 1 - R.count;
	if (*next < first) {
		skipped = first - *next;
		*next = first;
	}
	if (skipped > 0)
		skipped_line(out, skipped);
	while (*next <= R.last && out->len - before < max) {
		e = &R.ents[*next % R.cap];
		if (errord_tail_match(q, e->ev))
			strbuf_append(out, e->line, e->len);
		(*next)++;
	}
	/* Nothing to send since the last heartbeat: an empty line, so a
	 * client that went away is noticed and its connection freed. */
	if (out->len == before && *beat != R.beat)
		strbuf_putc(out, '\n');
	*beat = R.beat;
	pthread_mutex_unlock(&R.mu);
	if (skipped > 0)
		metric_add(errord_m.skipped, (int64_t)skipped);
	return (ssize_t)(out->len - before);
}

/* errord_ring_follow - wake stream s after each commit. */
void
errord_ring_follow(struct errord_follower *f, struct httpd_stream *s)
{
	pthread_mutex_lock(&R.fmu);
	f->stream = s;
	f->prev = NULL;
	f->next = R.followers;
	if (R.followers != NULL)
		R.followers->prev = f;
	R.followers = f;
	/* in case it parked before it was on the list */
	httpd_stream_wake(s);
	pthread_mutex_unlock(&R.fmu);
	metric_add(errord_m.followers, 1);
}

/* errord_ring_unfollow - from the stream's free function. */
void
errord_ring_unfollow(struct errord_follower *f)
{
	pthread_mutex_lock(&R.fmu);
	if (f->prev != NULL)
		f->prev->next = f->next;
	else if (R.followers == f)
		R.followers = f->next;
	if (f->next != NULL)
		f->next->prev = f->prev;
	f->prev = f->next = NULL;
	f->stream = NULL;
	pthread_mutex_unlock(&R.fmu);
	metric_add(errord_m.followers, -1);
}

/* errord_ring_heartbeat - make every parked follower send an empty line
 * (clients skip it), which detects followers whose client is gone. */
void
errord_ring_heartbeat(void)
{
	pthread_mutex_lock(&R.mu);
	R.beat++;
	pthread_mutex_unlock(&R.mu);
	wake_all();
}

/* errord_ring_stop - every follower ends its stream. */
void
errord_ring_stop(void)
{
	pthread_mutex_lock(&R.mu);
	R.stopping = 1;
	pthread_mutex_unlock(&R.mu);
	wake_all();
}
