/* SPDX-License-Identifier: MIT */
/*
 * errord_tail.c - GET /v1/tail: the last matching events, then (follow=1)
 * the new ones as they are committed.
 *
 * History: the handler takes the committed horizon, scans the store files
 * newest first from their ends and notes where the last `limit` matching
 * lines are (file, offset, length); the stream then reads them back oldest
 * first.  Follow: after the history the stream reads the ring from the
 * horizon on and parks (no thread held) until the writer wakes it.  The
 * reply is application/x-ndjson, one stored event per line.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_proto.h"
#include "config.h"
#include "errord.h"
#include "log.h"

#define TAIL_CHUNK	(64 * 1024)	/* output gathered per refill */
#define TAIL_SKEW_US	(300LL * 1000000)	/* sender clocks vs. mtime */

struct hit {
	int		 fd;
	off_t		 off;
	size_t		 len;
};

struct tail {
	struct errord_tail_query q;
	char		 pattern[ERRORD_NAME_MAX + 32];	/* "daemon":"x" */
	int		 filtered;	/* any filter besides limit */
	struct hit	*hits;		/* newest first */
	size_t		 nhits;
	size_t		 sent;		/* hits already streamed */
	int		*fds;
	size_t		 nfds;
	int		 cur_fd;	/* file being scanned */
	char		*scratch;	/* one line */
	struct strbuf	*out;
	size_t		 outpos;
	uint64_t	 next;		/* follow: next seq wanted */
	uint64_t	 beat;		/* heartbeat generation seen */
	int		 following;
	struct errord_follower f;
};

/* tail_param - httpd_req_query as an errord_param_fn. */
static const char *
tail_param(void *ctx, const char *key)
{
	return httpd_req_query(ctx, key);
}

/* tail_hit - a history line (scanned newest first): keep it if it
 * matches; stop at limit. */
static int
tail_hit(void *arg, const char *line, size_t len, off_t off)
{
	struct tail *t = arg;
	json_t	*ev;
	int	 ok;

	if (len == 0)
		return 0;
	if (t->filtered) {
		/* cheap: our lines hold the daemon exactly as sent */
		if (t->q.daemon[0] != '\0' &&
		    memmem(line, len, t->pattern, strlen(t->pattern)) == NULL)
			return 0;
		if ((ev = json_loadb(line, len, 0, NULL)) == NULL)
			return 0;
		ok = errord_tail_match(&t->q, ev);
		json_decref(ev);
		if (!ok)
			return 0;
	}
	t->hits[t->nhits].fd = t->cur_fd;
	t->hits[t->nhits].off = off;
	t->hits[t->nhits].len = len;
	return ++t->nhits >= (size_t)t->q.limit;
}

/* tail_history - find the last q.limit matching committed events. */
static void
tail_history(struct tail *t, uint64_t file_seq, off_t file_size)
{
	char	**files, path[4096];
	struct stat st;
	uint64_t seq;
	size_t	 i, before;
	off_t	 size;
	int	 fd;

	t->hits = xcalloc((size_t)t->q.limit, sizeof(*t->hits));
	files = errord_store_files(cfg.errord_dir);
	for (i = 0; files[i] != NULL && t->nhits < (size_t)t->q.limit; i++) {
		if (errord_file_seq(files[i], &seq) < 0 || seq > file_seq)
			continue;	/* begun after our horizon */
		if (snprintf(path, sizeof(path), "%s/%s", cfg.errord_dir,
		    files[i]) >= (int)sizeof(path))
			continue;
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			continue;	/* deleted by retention meanwhile */
		if (fstat(fd, &st) < 0) {
			close(fd);
			continue;
		}
		/* Events are written after their time: a file last written
		 * before since holds nothing newer, nor do older files. */
		if (t->q.since_us != 0 && (int64_t)st.st_mtime * 1000000 <
		    t->q.since_us - TAIL_SKEW_US) {
			close(fd);
			break;
		}
		size = seq == file_seq ? file_size : st.st_size;
		before = t->nhits;
		t->cur_fd = fd;
		if (errord_scan_back(fd, size, tail_hit, t) < 0)
			log_warnx("errord: tail: %s: unreadable line", path);
		if (t->nhits == before) {
			close(fd);
			continue;
		}
		t->fds = xreallocarray(t->fds, t->nfds + 1, sizeof(*t->fds));
		t->fds[t->nfds++] = fd;
	}
	errord_store_files_free(files);
}

/* tail_refill - put the next lines into t->out: 1 if there are some, 0 if
 * nothing yet, -1 at the end. */
static int
tail_refill(struct tail *t)
{
	struct hit *h;
	ssize_t	 r;

	strbuf_reset(t->out);
	t->outpos = 0;
	while (t->sent < t->nhits && t->out->len < TAIL_CHUNK) {
		h = &t->hits[t->nhits - 1 - t->sent++];
		r = pread(h->fd, t->scratch, h->len, h->off);
		if (r != (ssize_t)h->len)
			continue;	/* cannot happen: append-only */
		strbuf_append(t->out, t->scratch, h->len);
		strbuf_putc(t->out, '\n');
	}
	if (t->out->len > 0)
		return 1;
	if (!t->q.follow)
		return -1;
	r = errord_ring_read(&t->next, &t->beat, &t->q, t->out, TAIL_CHUNK);
	if (r < 0)
		return -1;
	return r > 0;
}

/* tail_stream - the stream callback: copy out what is ready. */
static ssize_t
tail_stream(void *arg, char *buf, size_t max)
{
	struct tail *t = arg;
	size_t	 n;
	int	 r;

	if (t->outpos >= t->out->len && (r = tail_refill(t)) <= 0)
		return r;
	n = t->out->len - t->outpos;
	if (n > max)
		n = max;
	memcpy(buf, t->out->buf + t->outpos, n);
	t->outpos += n;
	return (ssize_t)n;
}

/* tail_free - the stream's end (any reason). */
static void
tail_free(void *arg)
{
	struct tail *t = arg;
	size_t	 i;

	if (t->following)
		errord_ring_unfollow(&t->f);
	for (i = 0; i < t->nfds; i++)
		close(t->fds[i]);
	free(t->fds);
	free(t->hits);
	free(t->scratch);
	strbuf_free(t->out);
	free(t);
}

/* errord_tail_handler - GET /v1/tail. */
int
errord_tail_handler(struct httpd_req *req)
{
	struct errord_tail_query q;
	struct httpd_stream *s;
	struct tail *t;
	char	 err[256];
	uint64_t last, file_seq;
	off_t	 file_size;

	if (errord_tail_query_decode(&q, tail_param, req, err,
	    sizeof(err)) < 0)
		return httpd_reply_error(req, 400, "%s", err);
	t = xcalloc(1, sizeof(*t));
	t->q = q;
	t->filtered = q.daemon[0] != '\0' || q.level > LOG_LVL_DEBUG ||
	    q.since_us != 0 || q.text[0] != '\0';
	if (q.daemon[0] != '\0')
		snprintf(t->pattern, sizeof(t->pattern), "\"%s\":\"%s\"",
		    F_EV_DAEMON, q.daemon);
	t->out = strbuf_new(TAIL_CHUNK + ERRORD_MAX_LINE);
	t->scratch = xmalloc(ERRORD_MAX_LINE);
	errord_ring_snapshot(&last, &file_seq, &file_size);
	if (q.limit > 0)
		tail_history(t, file_seq, file_size);
	t->next = last + 1;
	s = httpd_reply_stream(req, 200, API_NDJSON_TYPE, tail_stream, t,
	    tail_free);
	if (s == NULL)
		return 0;	/* replied 500, t freed */
	/* The stream does not run before this handler returns (same
	 * connection, same thread), so t is still ours here. */
	if (q.follow) {
		t->following = 1;
		errord_ring_follow(&t->f, s);
	}
	return 0;
}
