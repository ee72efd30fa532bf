/* SPDX-License-Identifier: MIT */
/*
 * karl.h - private interface of karl's modules.
 */
#ifndef KARL_H
#define KARL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "httpd.h"
#include "karl_clnt.h"

#define KARL_LIST_MAX		100000	/* receivers in one listing */
#define KARL_KIND_MAX		16	/* bytes of a kind name, with NUL */

/* karl_spool.c: the leveldb spool, one per karl instance. */
int	 karl_spool_open(const char *dir);
void	 karl_spool_close(void);
/* karl_spool_jobs - number of jobs on disk (walks the keys). */
int64_t	 karl_spool_jobs(void);

#define KARL_SPOOL_STORED	0
#define KARL_SPOOL_DUPLICATE	1	/* batch already held: nothing done */
#define KARL_SPOOL_CONFLICT	2	/* out of order or after the last */
#define KARL_SPOOL_ERROR	-1	/* leveldb failed (logged) */

/* karl_spool_put - store batch s of its job in one synced write, or tell
 * why not (CONFLICT: reason in err).  *nrcpt gets the receivers of the
 * batch (as first stored, for a duplicate).  Serialised per job. */
int	 karl_spool_put(const struct karl_send *s, time_t now, size_t *nrcpt,
	    char *err, size_t errlen);

struct karl_job_info {
	char		kind[KARL_KIND_MAX];
	long long	batches;
	int		complete;	/* the last batch is held */
	long long	receivers, queued, sent, deferred, failed;
};

/* karl_spool_job_info - the job's state and receiver counts: 0, 1 if
 * there is no such job, -1 on error (logged). */
int	 karl_spool_job_info(const char *id, struct karl_job_info *info);
/* karl_spool_receivers - append {"to", "state"} of the job's first max
 * receivers (in batch order) to arr; *more is set when there are more.
 * 0, 1 if there is no such job, -1 on error. */
int	 karl_spool_receivers(const char *id, json_t *arr, size_t max,
	    int *more);

/* karl_spool_message - the job's message bytes (allocated, NUL added):
 * 0, 1 if there is no such job, -1 on error. */
int	 karl_spool_message(const char *id, char **msg, size_t *len);

/* Receiver record fields the delivery adds (spool only). */
#define R_ATTEMPTS	"attempts"
#define R_NEXT		"next"		/* unix time of the next attempt */
#define R_REPORTED	"reported"	/* a failure reported to messageserver */
#define R_CODE		"code"		/* last SMTP reply code */
#define R_DIAG		"diag"		/* last reply text */

#define KARL_RKEY_MAX	(16 + KARL_JOB_MAX + 32)	/* a rcpt/ key */

/* karl_scan_fn - one receiver of a scan (key and rec borrowed); 1 stops
 * the scan. */
typedef int (*karl_scan_fn)(void *ctx, const char *key, json_t *rec);
/* karl_spool_scan - call fn for each receiver record after key after
 * ("" from the first), in key order, skipping sent ones; 0 or -1. */
int	 karl_spool_scan(const char *after, karl_scan_fn fn, void *ctx);
/* karl_spool_rcpt - the receiver record at key now (caller decrefs);
 * NULL when gone or on error. */
json_t	*karl_spool_rcpt(const char *key);
/* karl_spool_job - the job record (caller decrefs) and message
 * (allocated): 0, 1 if there is no such job, -1 on error. */
int	 karl_spool_job(const char *id, json_t **rec, char **msg,
	    size_t *len);

/* One receiver's new state, as delivery records it. */
struct karl_outcome {
	const char	*key;		/* rcpt/ key */
	const json_t	*rec;		/* the updated record */
	int		 final;		/* sent, or failed and reported */
	int		 sent;
};
/* karl_spool_record - write outcomes o[0..n) and the job counters in one
 * synced write; then remove each job that is complete with every
 * receiver final, leaving a tombstone.  0 or -1 (nothing written). */
int	 karl_spool_record(const struct karl_outcome *o, size_t n,
	    time_t now);
/* karl_spool_prune - drop tombstones older than KARL_TOMBSTONE_TTL and
 * remove done jobs whose removal failed before. */
void	 karl_spool_prune(time_t now);
#define KARL_TOMBSTONE_TTL	(7 * 86400)

/* karl_job_of_key - the job id of a rcpt/ key into id; 0 or -1. */
int	 karl_job_of_key(const char *key, char *id, size_t idlen);

/* karl_deliver.c: the scheduler, the workers and the transport thread. */
int	 karl_deliver_init(void);
void	 karl_deliver_run(void);
void	 karl_deliver_stop(void);
void	 karl_deliver_fini(void);
/* karl_deliver_kick - new receivers are in the spool: scan again. */
void	 karl_deliver_kick(void);
/* karl_deliver_stats - GET /v1/stats body (caller decrefs). */
json_t	*karl_deliver_stats(void);
int	 karl_stats_handler(struct httpd_req *);

/* karl_prepare.c: one receiver's message. */
struct karl_jobctx;
/* karl_prepare_init - parse dkim_keys and load the keys; derive the VERP
 * key.  0 or -1 (logged). */
int	 karl_prepare_init(void);
void	 karl_prepare_fini(void);
/* karl_prepare_job - the per-job state (footer templates, MIME plan)
 * from the job record and message (rec borrowed, msg taken). */
struct karl_jobctx *karl_prepare_job(const char *id, const json_t *rec,
	    char *msg, size_t len);
struct karl_jobctx *karl_prepare_job_free(struct karl_jobctx *);
time_t	 karl_jobctx_created(const struct karl_jobctx *);
size_t	 karl_jobctx_size(const struct karl_jobctx *);
/* karl_prepare_message - the message for receiver rec (footers, list
 * headers, DKIM signatures; allocated, CRLF) and its envelope sender
 * (allocated); 0 or -1 with a reason in err. */
int	 karl_prepare_message(const struct karl_jobctx *, const json_t *rec,
	    char **msg, size_t *len, char **mail_from, char *err,
	    size_t errlen);

/* karl_maildir.c: the maildir transport. */
/* karl_maildir_deliver - write msg to dir/<to>/new after a Return-Path
 * (from) and a Delivered-To (to) line, as a delivery agent does; 0 or -1
 * with a reason in err. */
int	 karl_maildir_deliver(const char *dir, const char *to,
	    const char *from, const char *msg, size_t len, char *err,
	    size_t errlen);

/* karl_smtp.c: the SMTP transport (PIPELINING client, poll(2)). */
struct karl_smtp;
struct karl_smtp_msg {
	const char	*host;		/* relay or MX host (TLS SNI, logs,
					   sessions are reused per host) */
	const char	*addr;		/* the address to connect to (an MX
					   address); NULL: resolve host */
	int		 port;
	const char	*mail_from;
	const char	*rcpt;
	const char	*data;
	size_t		 len;
	void		*arg;		/* handed back on completion */
};
/* karl_smtp_done_fn - a transaction ended: code is the last SMTP reply
 * (0: none, the connection failed), ok when the message was taken; diag
 * the refusal or the last reply line, or why the connection failed
 * (borrowed). */
typedef void (*karl_smtp_done_fn)(void *arg, int ok, int code,
	    const char *diag);
struct karl_smtp *karl_smtp_new(int max_conns, karl_smtp_done_fn done);
struct karl_smtp *karl_smtp_free(struct karl_smtp *);
/* karl_smtp_start - begin a transaction (m's strings must live until its
 * done call); 0 or -1. */
int	 karl_smtp_start(struct karl_smtp *, const struct karl_smtp_msg *m);
/* karl_smtp_poll - run transfers and call done for those that ended; if
 * none did, wait at most ms for activity (karl_smtp_wakeup breaks the
 * wait). */
void	 karl_smtp_poll(struct karl_smtp *, int ms);
void	 karl_smtp_wakeup(struct karl_smtp *);
int	 karl_smtp_active(const struct karl_smtp *);

/* karl_intake.c: the HTTP API (karl_clnt.h). */
void	 karl_intake_init(void);
/* karl_intake_max_body - the bound of a POST /v1/send body. */
size_t	 karl_intake_max_body(void);
int	 karl_send_handler(struct httpd_req *);
int	 karl_jobs_handler(struct httpd_req *);

#endif
