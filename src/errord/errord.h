/* SPDX-License-Identifier: MIT */
/*
 * errord.h - private interfaces between errord's modules.
 *
 *	errord.c	main: the daemon spec, routes, own log sink
 *	errord_store.c	the append-only store: recovery, the group-commit
 *			writer thread, rotation and retention
 *	errord_ring.c	recent committed events in memory, the committed
 *			horizon, and the followers of tail -f
 *	errord_log.c	POST /v1/log
 *	errord_tail.c	GET /v1/tail: history from the files, then the ring
 *	errord_crash.c	the run loop: crash reports from crash_dir each second
 *
 * Lock order: a stream's lock (httpd) -> ring lock; follower lock -> a
 * stream's lock.  Nothing logs while holding the store or ring lock (the
 * log sink takes the store lock).
 */
#ifndef ERRORD_H
#define ERRORD_H

#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "errord_clnt.h"
#include "httpd.h"
#include "strbuf.h"

/* Store file names: events-<first seq, 20 digits>.jsonl, so they sort. */
#define ERRORD_FILE_PREFIX	"events-"
#define ERRORD_FILE_SUFFIX	".jsonl"
#define ERRORD_FILE_NAME_MAX	64
/* A stored line: the event plus {"seq":N, and the newline. */
#define ERRORD_MAX_LINE		(ERRORD_MAX_EVENT + 64)

/* The ring holds errord_ring events but no more than this memory. */
#define ERRORD_RING_MAX_BYTES	(256 * 1024 * 1024)

/* One event on its way to the store and into the ring. */
struct errord_rec {
	json_t		*ev;	/* owned reference, never modified */
	char		*body;	/* owned: ev as compact JSON */
	size_t		 len;
	uint64_t	 seq;	/* set by the writer */
};

/* Counters (errord.c). */
struct errord_metrics {
	struct metric	*accepted;	/* events acknowledged to senders */
	struct metric	*stored;	/* events written, incl. own/crash */
	struct metric	*batches;	/* POST /v1/log batches accepted */
	struct metric	*commits;	/* group commits */
	struct metric	*fsyncs;
	struct metric	*bytes;
	struct metric	*rejected;	/* events/batches refused */
	struct metric	*dropped;	/* own events dropped */
	struct metric	*followers;	/* gauge: tail -f streams */
	struct metric	*skipped;	/* events followers fell behind on */
	struct metric	*crashes;	/* crash reports stored */
};
extern struct errord_metrics errord_m;

/* errord_store.c */
/* errord_store_open - recover the store in dir and start the writer
 * thread; 0 or -1 (logged). */
int	 errord_store_open(const char *dir);
/* errord_store_close - write what is queued, stop the writer, close. */
void	 errord_store_close(void);
/* errord_store_put - store events (an array of checked events, borrowed)
 * and return once they are durable: 0, or -1 if they could not be written
 * (nothing acknowledged).  Blocks the caller for one group commit. */
int	 errord_store_put(json_t *events);
/* errord_store_put_async - queue one event (borrowed) without waiting
 * (errord's own log events); dropped and counted if the writer is gone. */
void	 errord_store_put_async(json_t *ev);
/* errord_store_retention - apply the retention rules now (any thread but
 * the writer). */
void	 errord_store_retention(void);
/* errord_file_seq - the first seq of a store file name, -1 if the name is
 * not one of ours. */
int	 errord_file_seq(const char *name, uint64_t *seqp);
/* errord_line_fn - one line of a file (without its newline) at offset off;
 * non-zero stops the scan. */
typedef int (*errord_line_fn)(void *ctx, const char *line, size_t len,
	    off_t off);
/* errord_scan_back - call fn for each line of fd's first size bytes, last
 * line first.  0 at the start of the file, 1 if fn stopped, -1 on a read
 * error or a line longer than ERRORD_MAX_LINE (logged by the caller). */
int	 errord_scan_back(int fd, off_t size, errord_line_fn fn, void *ctx);
/* errord_store_healthy - 0, or -1 with a reason if the last write failed. */
int	 errord_store_healthy(const char **reason);
/* errord_store_files - store file names, newest first (allocated array of
 * allocated strings, NULL-terminated; free with errord_store_files_free). */
char	**errord_store_files(const char *dir);
void	 errord_store_files_free(char **);

/* errord_ring.c */
void	 errord_ring_init(size_t cap);
void	 errord_ring_fini(void);
/* errord_ring_commit - after a group commit: events evs[0..n) got seqs
 * first_seq.. and the stored lines lines[offs[i]..offs[i+1]) (newline
 * included); they become visible to tails (copied) and followers are
 * woken.  file_seq/file_size describe the current file after the commit. */
void	 errord_ring_commit(json_t *const *evs, uint64_t first_seq, size_t n,
	    const char *lines, const size_t *offs, uint64_t file_seq,
	    off_t file_size);
/* errord_ring_horizon - set the committed horizon at start (no events). */
void	 errord_ring_horizon(uint64_t last_seq, uint64_t file_seq,
	    off_t file_size);
/* errord_ring_snapshot - the last committed seq and the current file's
 * first seq and committed size, consistent with each other. */
void	 errord_ring_snapshot(uint64_t *last_seq, uint64_t *file_seq,
	    off_t *file_size);
/* errord_ring_read - append to out the matching lines after *next (up to
 * about max bytes), advancing *next; a "N events skipped" line if *next
 * fell out of the ring; an empty line if nothing else is due and a
 * heartbeat passed since *beat.  Returns bytes appended; -1 once
 * stopping. */
ssize_t	 errord_ring_read(uint64_t *next, uint64_t *beat,
	    const struct errord_tail_query *q, struct strbuf *out, size_t max);
/* errord_ring_heartbeat - every follower sends an empty line soon. */
void	 errord_ring_heartbeat(void);

/* A tail -f stream, woken after each commit. */
struct errord_follower {
	struct httpd_stream	*stream;
	struct errord_follower	*prev, *next;
};
void	 errord_ring_follow(struct errord_follower *, struct httpd_stream *);
void	 errord_ring_unfollow(struct errord_follower *);
/* errord_ring_stop - followers end their streams. */
void	 errord_ring_stop(void);

/* errord_log.c, errord_tail.c */
int	 errord_log_handler(struct httpd_req *);
int	 errord_tail_handler(struct httpd_req *);

/* errord_crash.c */
void	 errord_crash_run(void);
void	 errord_crash_stop(void);
/* errord_crash_kick - have the run loop apply retention at once. */
void	 errord_crash_kick(void);

#endif
