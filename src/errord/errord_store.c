/* SPDX-License-Identifier: MIT */
/*
 * errord_store.c - errord's append-only event store.
 *
 * Events live in JSON-lines files events-<first seq>.jsonl in errord_dir,
 * one event per line with errord's "seq" first; the newest file is the one
 * written.  One writer thread does group commit: request handlers queue a
 * batch and sleep; the writer takes everything queued, writes it with one
 * write(), fdatasync()s once (errord_sync) and wakes them all, so a reply
 * of 200 means the events are on disk.  Files rotate before they would
 * pass errord_rotate_size (a commit group is never split); retention keeps
 * errord_keep_files files and none older than errord_keep_days.
 *
 * At start the newest file's torn last line (kill -9 during a write) is
 * truncated away and the next seq is recovered from its last line.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_proto.h"
#include "config.h"
#include "errord.h"
#include "fsutil.h"
#include "log.h"
#include "metrics.h"

#define SCAN_BLOCK		(64 * 1024)
#define ASYNC_MAX		10000	/* own events queued, beyond: drop */

struct batch {
	struct errord_rec *recs;
	size_t		 n;
	int		 done;
	int		 failed;
	int		 async;		/* freed by the writer */
	struct batch	*next;
};

static struct {
	pthread_mutex_t	 mu;		/* guards the fields up to thread */
	pthread_cond_t	 work;		/* the writer waits for batches */
	pthread_cond_t	 done;		/* senders wait for their commit */
	struct batch	*head, *tail;
	size_t		 async_queued;
	int		 accepting;	/* puts are queued */
	int		 running;	/* the writer thread exists */
	int		 stopping;
	int		 write_failed;	/* last commit failed (health) */
	pthread_t	 thread;
	/* The writer's own (and open's, before the thread starts). */
	char		*dir;
	int		 dirfd;
	int		 fd;
	uint64_t	 file_seq;	/* first seq of the current file */
	off_t		 size;		/* bytes committed to it */
	uint64_t	 next_seq;
	struct strbuf	*buf;
} S = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
	.done = PTHREAD_COND_INITIALIZER,
	.dirfd = -1,
	.fd = -1,
};

/* errord_file_seq - parse events-<20 digits>.jsonl. */
int
errord_file_seq(const char *name, uint64_t *seqp)
{
	size_t	 plen = strlen(ERRORD_FILE_PREFIX), i;
	uint64_t seq = 0;

	if (strncmp(name, ERRORD_FILE_PREFIX, plen) != 0 ||
	    strlen(name) != plen + 20 + strlen(ERRORD_FILE_SUFFIX) ||
	    strcmp(name + plen + 20, ERRORD_FILE_SUFFIX) != 0)
		return -1;
	for (i = plen; i < plen + 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -1;
		seq = seq * 10 + (uint64_t)(name[i] - '0');
	}
	*seqp = seq;
	return 0;
}

static int
cmp_desc(const void *a, const void *b)
{
	return -strcmp(*(char *const *)a, *(char *const *)b);
}

/* errord_store_files - our file names in dir, newest first (allocated). */
char **
errord_store_files(const char *dir)
{
	DIR	*d;
	struct dirent *de;
	char	**v;
	size_t	 n = 0, cap = 16;
	uint64_t seq;

	v = xcalloc(cap + 1, sizeof(*v));
	if ((d = opendir(dir)) == NULL)
		return v;
	while ((de = readdir(d)) != NULL) {
		if (errord_file_seq(de->d_name, &seq) < 0)
			continue;
		if (n == cap) {
			cap *= 2;
			v = xreallocarray(v, cap + 1, sizeof(*v));
		}
		v[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	v[n] = NULL;
	/* Zero-padded sequence numbers: name order is age order. */
	qsort(v, n, sizeof(*v), cmp_desc);
	return v;
}

/* errord_store_files_free - free an array of errord_store_files. */
void
errord_store_files_free(char **v)
{
	size_t	 i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* pread_full - read exactly n bytes at off; 0 or -1. */
static int
pread_full(int fd, char *buf, size_t n, off_t off)
{
	ssize_t	 r;

	while (n > 0) {
		if ((r = pread(fd, buf, n, off)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EIO;	/* shorter than it was */
			return -1;
		}
		buf += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

/* errord_scan_back - lines of fd[0, size) from the last to the first.
 * The window buf holds [pos, end): a block just read followed by the start
 * of the line that the previous block ended in. */
int
errord_scan_back(int fd, off_t size, errord_line_fn fn, void *ctx)
{
	char	*buf;
	size_t	 carry = 0, n, wlen, end, i;
	off_t	 pos = size;
	int	 rc = 0;

	if (size <= 0)
		return 0;
	buf = xmalloc(SCAN_BLOCK + ERRORD_MAX_LINE + 1);
	/* A file that does not end in a newline ends in a torn line: skip
	 * it (only the writer's recovery sees one). */
	while (pos > 0 && rc == 0) {
		n = pos >= SCAN_BLOCK ? SCAN_BLOCK : (size_t)pos;
		pos -= (off_t)n;
		memmove(buf + n, buf, carry);
		if (pread_full(fd, buf, n, pos) < 0) {
			rc = -1;
			break;
		}
		wlen = n + carry;
		end = wlen;
		if (pos + (off_t)wlen == size && buf[wlen - 1] != '\n') {
			/* the torn tail: drop up to the last newline */
			while (end > 0 && buf[end - 1] != '\n')
				end--;
			if (end == 0 && pos > 0) {
				carry = 0;
				rc = -1;	/* a torn line longer than a block */
				break;
			}
		}
		/* buf[end - 1] is the newline ending the last whole line. */
		while (end > 0) {
			for (i = end - 1; i > 0 && buf[i - 1] != '\n'; i--)
				;
			if (i == 0 && pos > 0)
				break;	/* its start is in an earlier block */
			if (fn(ctx, buf + i, end - 1 - i, pos + (off_t)i)) {
				rc = 1;
				break;
			}
			end = i;
		}
		carry = end;
		if (carry > ERRORD_MAX_LINE) {
			rc = -1;
			break;
		}
	}
	free(buf);
	return rc;
}

struct last_seq {
	uint64_t	 seq;
	int		 found;
};

/* last_seq_line - the seq of the last line that has one. */
static int
last_seq_line(void *arg, const char *line, size_t len, off_t off)
{
	struct last_seq *ls = arg;
	json_t	*ev, *v;

	(void)off;
	if ((ev = json_loadb(line, len, 0, NULL)) == NULL)
		return 0;
	v = json_object_get(ev, F_EV_SEQ);
	if (json_is_integer(v) && json_integer_value(v) > 0) {
		ls->seq = (uint64_t)json_integer_value(v);
		ls->found = 1;
	}
	json_decref(ev);
	return ls->found;
}

/* file_path - dir/name into buf; -1 if it does not fit. */
static int
file_path(char *buf, size_t len, uint64_t seq)
{
	int	 n;

	n = snprintf(buf, len, "%s/%s%020" PRIu64 "%s", S.dir,
	    ERRORD_FILE_PREFIX, seq, ERRORD_FILE_SUFFIX);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* open_file - open (creating) the file whose first seq is seq for
 * appending; its size in *sizep.  -1 on failure (errno set). */
static int
open_file(uint64_t seq, off_t *sizep)
{
	char	 path[4096];
	struct stat st;
	int	 fd;

	if (file_path(path, sizeof(path), seq) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -1;
	}
	*sizep = st.st_size;
	/* the directory entry must survive a crash too */
	if (S.dirfd >= 0)
		(void)fsync(S.dirfd);
	return fd;
}

/* last_newline - the offset just past the last newline in fd[0, size)
 * (0 if there is none), or -1 on a read error. */
static off_t
last_newline(int fd, off_t size)
{
	char	 buf[SCAN_BLOCK];
	off_t	 pos = size;
	size_t	 n;

	while (pos > 0) {
		n = pos >= SCAN_BLOCK ? SCAN_BLOCK : (size_t)pos;
		pos -= (off_t)n;
		if (pread_full(fd, buf, n, pos) < 0)
			return -1;
		while (n > 0)
			if (buf[--n] == '\n')
				return pos + (off_t)n + 1;
	}
	return 0;
}

/* recover - truncate the newest file's torn tail and find the next seq. */
static int
recover(const char *name)
{
	struct last_seq ls = { 0, 0 };
	struct stat st;
	char	 c;
	off_t	 good = 0;
	int	 rc;

	if (errord_file_seq(name, &S.file_seq) < 0)
		return -1;
	if ((S.fd = open_file(S.file_seq, &S.size)) < 0) {
		log_warn("errord: open %s/%s", S.dir, name);
		return -1;
	}
	if (S.size > 0) {
		if (pread_full(S.fd, &c, 1, S.size - 1) < 0) {
			log_warn("errord: read %s/%s", S.dir, name);
			return -1;
		}
		if (c != '\n' && (good = last_newline(S.fd, S.size)) < 0) {
			log_warn("errord: read %s/%s", S.dir, name);
			return -1;
		}
		if (c != '\n') {
			if (ftruncate(S.fd, good) < 0 || fsync(S.fd) < 0) {
				log_warn("errord: truncate %s/%s", S.dir, name);
				return -1;
			}
			log_warnx("errord: %s: removed a torn last line of "
			    "%lld bytes (kill or crash during a write)", name,
			    (long long)(S.size - good));
			S.size = good;
		}
	}
	rc = errord_scan_back(S.fd, S.size, last_seq_line, &ls);
	if (rc < 0 && !ls.found) {
		log_warnx("errord: %s: cannot read the last seq", name);
		return -1;
	}
	S.next_seq = ls.found ? ls.seq + 1 : S.file_seq;
	if (S.next_seq < S.file_seq)
		S.next_seq = S.file_seq;
	if (fstat(S.fd, &st) == 0 && st.st_size != S.size)
		S.size = st.st_size;
	return 0;
}

/* rotate - start a new file whose first seq is seq. */
static int
rotate(uint64_t seq)
{
	off_t	 size;
	int	 fd;

	if ((fd = open_file(seq, &size)) < 0)
		return -1;
	if (cfg.errord_sync)
		(void)fdatasync(S.fd);
	close(S.fd);
	S.fd = fd;
	S.file_seq = seq;
	S.size = size;
	return 0;
}

/* errord_store_retention - delete files beyond errord_keep_files and
 * older than errord_keep_days, never the current one.  Runs on errord's
 * run thread, not the writer's: unlinking a large file takes a while. */
void
errord_store_retention(void)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	char	**files, path[4096];
	struct stat st;
	time_t	 limit;
	uint64_t seq, last, cur;
	off_t	 size;
	size_t	 i;
	int	 del;

	if (S.dir == NULL)
		return;
	pthread_mutex_lock(&mu);
	errord_ring_snapshot(&last, &cur, &size);
	files = errord_store_files(S.dir);
	limit = cfg.errord_keep_days > 0 ?
	    time(NULL) - (time_t)cfg.errord_keep_days * 86400 : 0;
	for (i = 0; files[i] != NULL; i++) {
		if (errord_file_seq(files[i], &seq) < 0 || seq >= cur)
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", S.dir, files[i]) >=
		    (int)sizeof(path))
			continue;
		del = i >= (size_t)cfg.errord_keep_files;
		if (!del && limit > 0 && stat(path, &st) == 0 &&
		    st.st_mtime < limit)
			del = 1;
		if (!del)
			continue;
		if (unlink(path) < 0 && errno != ENOENT)
			log_warn("errord: retention: unlink %s", path);
		else
			log_info("errord: retention: deleted %s", files[i]);
	}
	errord_store_files_free(files);
	pthread_mutex_unlock(&mu);
}

/* write_all - the whole buffer or -1. */
static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t	 r;

	while (n > 0) {
		if ((r = write(fd, p, n)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* free_recs - release a batch's records. */
static void
free_recs(struct errord_rec *recs, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		json_decref(recs[i].ev);
		free(recs[i].body);
	}
	free(recs);
}

/* commit - write the batches of list as one group; wake their senders. */
static int
commit(struct batch *list)
{
	struct batch *b, *next;
	json_t	**evs;
	size_t	*offs, n = 0, i, k = 0;
	uint64_t seq = S.next_seq;
	int	 failed = 0, rotated = 0, saved = 0;
	const char *what = NULL;

	for (b = list; b != NULL; b = b->next)
		n += b->n;
	evs = xcalloc(n + 1, sizeof(*evs));
	offs = xcalloc(n + 1, sizeof(*offs));
	strbuf_reset(S.buf);
	for (b = list; b != NULL; b = b->next) {
		for (i = 0; i < b->n; i++, k++) {
			struct errord_rec *r = &b->recs[i];

			r->seq = seq++;
			evs[k] = r->ev;
			offs[k] = S.buf->len;
			/* {"seq":N, then the sender's event without its
			 * opening brace */
			strbuf_appendf(S.buf, "{\"%s\":%" PRIu64, F_EV_SEQ,
			    r->seq);
			if (r->len > 2) {
				strbuf_putc(S.buf, ',');
				strbuf_append(S.buf, r->body + 1, r->len - 1);
			} else
				strbuf_putc(S.buf, '}');
			strbuf_putc(S.buf, '\n');
		}
	}
	offs[n] = S.buf->len;
	if (S.size > 0 &&
	    S.size + (off_t)S.buf->len > (off_t)cfg.errord_rotate_size) {
		if (rotate(S.next_seq) < 0) {
			saved = errno;
			what = "rotate";	/* keep appending to the old one */
		} else
			rotated = 1;
	}
	if (write_all(S.fd, S.buf->buf, S.buf->len) < 0) {
		failed = errno;
		what = "write";
	} else if (cfg.errord_sync) {
		metric_add(errord_m.fsyncs, 1);
		if (fdatasync(S.fd) < 0) {
			failed = errno;
			what = "fdatasync";
		}
	}
	if (failed) {
		/* nothing of this group is acknowledged: cut it off again */
		/* if this fails too, the next start truncates the torn
		 * line */
		(void)!ftruncate(S.fd, S.size);
	} else {
		S.size += (off_t)S.buf->len;
		S.next_seq = seq;
		metric_add(errord_m.stored, (int64_t)n);
		metric_add(errord_m.bytes, (int64_t)S.buf->len);
		metric_add(errord_m.commits, 1);
		errord_ring_commit(evs, seq - n, n, S.buf->buf, offs,
		    S.file_seq, S.size);
	}
	free(evs);
	free(offs);

	pthread_mutex_lock(&S.mu);
	S.write_failed = failed != 0;
	for (b = list; b != NULL; b = next) {
		next = b->next;
		if (b->async) {
			S.async_queued -= b->n;
			free_recs(b->recs, b->n);
			free(b);
		} else {
			b->failed = failed != 0;
			b->done = 1;
		}
	}
	pthread_cond_broadcast(&S.done);
	pthread_mutex_unlock(&S.mu);
	if (S.buf->cap > 4 * 1024 * 1024) {
		/* a huge group once: do not keep its buffer */
		strbuf_free(S.buf);
		S.buf = strbuf_new(64 * 1024);
	}
	if (failed) {
		errno = failed;
		log_warn("errord: %s %s/%s%020" PRIu64 "%s: %zu events not "
		    "stored", what, S.dir, ERRORD_FILE_PREFIX, S.file_seq,
		    ERRORD_FILE_SUFFIX, n);
	} else if (what != NULL) {
		errno = saved;
		log_warn("errord: %s to a new file", what);
	}
	return rotated;
}

/* writer_main - the writer thread: group commits until stopped and
 * drained. */
static void *
writer_main(void *arg)
{
	struct batch *list;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&S.mu);
		while (S.head == NULL && !S.stopping)
			pthread_cond_wait(&S.work, &S.mu);
		if (S.head == NULL && S.stopping) {
			pthread_mutex_unlock(&S.mu);
			break;
		}
		list = S.head;
		S.head = S.tail = NULL;
		pthread_mutex_unlock(&S.mu);
		if (commit(list))
			errord_crash_kick();	/* retention, off this thread */
	}
	return NULL;
}

/* errord_store_open - recover dir and start the writer. */
int
errord_store_open(const char *dir)
{
	char	**files;
	int	 rc;

	S.dir = xstrdup(dir);
	S.buf = strbuf_new(64 * 1024);
	pthread_mutex_lock(&S.mu);
	S.accepting = 1;	/* own events queue up during recovery */
	pthread_mutex_unlock(&S.mu);
	if (fsutil_mkdirs(dir, 0750) < 0) {
		log_warn("errord: mkdir %s", dir);
		return -1;
	}
	if ((S.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		log_warn("errord: open %s", dir);
		return -1;
	}
	files = errord_store_files(dir);
	if (files[0] == NULL) {
		S.file_seq = S.next_seq = 1;
		if ((S.fd = open_file(S.file_seq, &S.size)) < 0) {
			log_warn("errord: create the first file in %s", dir);
			errord_store_files_free(files);
			return -1;
		}
		rc = 0;
	} else
		rc = recover(files[0]);
	errord_store_files_free(files);
	if (rc < 0)
		return -1;
	errord_ring_horizon(S.next_seq - 1, S.file_seq, S.size);
	log_info("errord: store %s: next seq %" PRIu64 ", current file "
	    "%s%020" PRIu64 "%s (%lld bytes)", dir, S.next_seq,
	    ERRORD_FILE_PREFIX, S.file_seq, ERRORD_FILE_SUFFIX,
	    (long long)S.size);
	pthread_mutex_lock(&S.mu);
	if (pthread_create(&S.thread, NULL, writer_main, NULL) != 0) {
		pthread_mutex_unlock(&S.mu);
		log_warnx("errord: cannot start the writer thread");
		return -1;
	}
	S.running = 1;
	pthread_mutex_unlock(&S.mu);
	return 0;
}

/* errord_store_close - drain the queue, stop the writer, close. */
void
errord_store_close(void)
{
	struct batch *b, *next;
	int	 running;

	pthread_mutex_lock(&S.mu);
	S.accepting = 0;
	S.stopping = 1;
	running = S.running;
	pthread_cond_signal(&S.work);
	pthread_mutex_unlock(&S.mu);
	if (running)
		pthread_join(S.thread, NULL);
	pthread_mutex_lock(&S.mu);
	S.running = 0;
	for (b = S.head; b != NULL; b = next) {	/* never started */
		next = b->next;
		if (b->async) {
			free_recs(b->recs, b->n);
			free(b);
		} else {
			b->failed = b->done = 1;
		}
	}
	S.head = S.tail = NULL;
	pthread_cond_broadcast(&S.done);
	pthread_mutex_unlock(&S.mu);
	if (S.fd >= 0) {
		if (cfg.errord_sync)
			(void)fdatasync(S.fd);
		close(S.fd);
		S.fd = -1;
	}
	if (S.dirfd >= 0) {
		close(S.dirfd);
		S.dirfd = -1;
	}
	S.buf = strbuf_free(S.buf);
	free(S.dir);
	S.dir = NULL;
}

/* make_recs - records for the events of array evs; NULL if one cannot be
 * encoded or is too large. */
static struct errord_rec *
make_recs(json_t *evs, size_t n)
{
	struct errord_rec *recs;
	size_t	 i;

	recs = xcalloc(n, sizeof(*recs));
	for (i = 0; i < n; i++) {
		recs[i].ev = json_incref(json_array_get(evs, i));
		recs[i].body = json_dumps(recs[i].ev, ERRORD_JSON_FLAGS);
		if (recs[i].body == NULL ||
		    (recs[i].len = strlen(recs[i].body)) > ERRORD_MAX_EVENT ||
		    recs[i].body[0] != '{') {
			free_recs(recs, i + 1);
			return NULL;
		}
	}
	return recs;
}

/* enqueue - append b to the queue; S.mu held. */
static void
enqueue(struct batch *b)
{
	if (S.tail != NULL)
		S.tail->next = b;
	else
		S.head = b;
	S.tail = b;
	pthread_cond_signal(&S.work);
}

/* errord_store_put - store a checked batch durably (blocks one commit). */
int
errord_store_put(json_t *events)
{
	struct batch b;
	int	 failed;

	memset(&b, 0, sizeof(b));
	if ((b.n = json_array_size(events)) == 0)
		return 0;
	if ((b.recs = make_recs(events, b.n)) == NULL)
		return -1;
	pthread_mutex_lock(&S.mu);
	if (!S.accepting || S.stopping) {
		pthread_mutex_unlock(&S.mu);
		free_recs(b.recs, b.n);
		return -1;
	}
	enqueue(&b);
	while (!b.done)
		pthread_cond_wait(&S.done, &S.mu);
	failed = b.failed;
	pthread_mutex_unlock(&S.mu);
	free_recs(b.recs, b.n);
	return failed ? -1 : 0;
}

/* errord_store_put_async - queue one of errord's own events. */
void
errord_store_put_async(json_t *ev)
{
	struct batch *b;
	json_t	*arr;

	arr = json_array();
	json_array_append(arr, ev);
	b = xcalloc(1, sizeof(*b));
	b->n = 1;
	b->async = 1;
	b->recs = make_recs(arr, 1);
	json_decref(arr);
	if (b->recs == NULL) {
		free(b);
		metric_add(errord_m.dropped, 1);
		return;
	}
	pthread_mutex_lock(&S.mu);
	if (!S.accepting || S.stopping || S.async_queued >= ASYNC_MAX) {
		pthread_mutex_unlock(&S.mu);
		free_recs(b->recs, b->n);
		free(b);
		metric_add(errord_m.dropped, 1);
		return;
	}
	S.async_queued++;
	enqueue(b);
	pthread_mutex_unlock(&S.mu);
}

/* errord_store_healthy - for /healthz. */
int
errord_store_healthy(const char **reason)
{
	int	 failed;

	pthread_mutex_lock(&S.mu);
	failed = S.write_failed || !S.running;
	pthread_mutex_unlock(&S.mu);
	if (failed) {
		*reason = "errord store is not writable";
		return -1;
	}
	return 0;
}
