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

/* karl_intake.c: the HTTP API (karl_clnt.h). */
void	 karl_intake_init(void);
/* karl_intake_max_body - the bound of a POST /v1/send body. */
size_t	 karl_intake_max_body(void);
int	 karl_send_handler(struct httpd_req *);
int	 karl_jobs_handler(struct httpd_req *);

#endif
