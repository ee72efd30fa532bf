/* SPDX-License-Identifier: MIT */
/*
 * karl_intake.c - karl's HTTP API (bodies in karl_clnt.h).
 *
 *	POST /v1/send		one batch of a job: decoded strictly, stored
 *				in one synced spool write, then 202; a batch
 *				already held is a 202 "duplicate" that
 *				changes nothing; out of order or after the
 *				last batch 409
 *	GET /v1/jobs/{id}	the job's state and receiver counts
 *	GET /v1/jobs/{id}/receivers	each receiver's address, state, VERP
 *				string and footer data
 *	GET /v1/jobs/{id}/message	the message as karl holds it
 *				(message/rfc822), before footers and
 *				signatures
 *
 * Callers hold the API secret; their bodies are still checked field by
 * field, as they end up in SMTP commands and headers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_proto.h"
#include "config.h"
#include "karl.h"
#include "log.h"
#include "metrics.h"

#define RECEIVERS_SUFFIX	"/receivers"
#define MESSAGE_SUFFIX		"/message"

static struct {
	struct metric	*jobs;
	struct metric	*batches;
	struct metric	*duplicates;
	struct metric	*receivers;
	struct metric	*refused;
} karl_m;

void
karl_intake_init(void)
{
	karl_m.jobs = metric_counter("karl_jobs_accepted_total",
	    "jobs whose batch 0 was stored", NULL);
	karl_m.batches = metric_counter("karl_batches_accepted_total",
	    "batches stored", NULL);
	karl_m.duplicates = metric_counter("karl_batches_duplicate_total",
	    "batches sent again that karl already held", NULL);
	karl_m.receivers = metric_counter("karl_receivers_queued_total",
	    "receivers stored for delivery", NULL);
	karl_m.refused = metric_counter("karl_batches_refused_total",
	    "batches refused as malformed or out of order", NULL);
}

/*
 * karl_intake_max_body - the largest message karl is handed is one smtpd
 * took plus what messageserver adds to its header (1 MiB is plenty),
 * base64url-encoded; then the footers and a full batch of receivers at
 * their bounds.  JSON escaping of control characters in footer data can
 * still exceed this: such a batch gets a 413 and has to be split.
 */
size_t
karl_intake_max_body(void)
{
	size_t msg = (size_t)cfg.smtpd_max_message + 1024 * 1024;
	size_t rcpt = SMTP_ADDR_MAX + KARL_VERP_MAX +
	    KARL_DATA_MAX * (KARL_KEY_MAX + KARL_VALUE_MAX + 8) + 64;

	return msg / 3 * 4 + 4 + 2 * KARL_FOOTER_MAX + 64 * 1024 +
	    (size_t)KARL_BATCH_MAX * rcpt;
}

/* karl_send_handler - POST /v1/send. */
int
karl_send_handler(struct httpd_req *req)
{
	struct karl_send s;
	const char *cid = httpd_req_cid(req);
	char err[256] = "";
	size_t n = 0;
	int rc;

	if (karl_send_decode(httpd_req_json(req), &s, err,
	    sizeof(err)) == -1) {
		metric_add(karl_m.refused, 1);
		log_info("%s karl: send refused: %s", cid, err);
		return httpd_reply_error(req, 400, "%s", err);
	}
	rc = karl_spool_put(&s, time(NULL), &n, err, sizeof(err));
	switch (rc) {
	case KARL_SPOOL_STORED:
		if (s.batch == 0)
			metric_add(karl_m.jobs, 1);
		metric_add(karl_m.batches, 1);
		metric_add(karl_m.receivers, (int64_t)n);
		log_info("%s karl: job %s batch %lld%s: %zu receivers queued",
		    cid, s.job, s.batch, s.last ? " (last)" : "", n);
		karl_deliver_kick();
		break;
	case KARL_SPOOL_DUPLICATE:
		metric_add(karl_m.duplicates, 1);
		log_info("%s karl: job %s batch %lld: duplicate", cid, s.job,
		    s.batch);
		break;
	case KARL_SPOOL_CONFLICT:
		metric_add(karl_m.refused, 1);
		log_info("%s karl: send refused: %s", cid, err);
		karl_send_free(&s);
		return httpd_reply_error(req, 409, "%s", err);
	default:
		karl_send_free(&s);
		return httpd_reply_error(req, 503,
		    "spool write failed; not stored, try again later");
	}
	rc = httpd_reply_json(req, 202, json_pack("{s:s, s:I, s:I, s:b}",
	    F_KARL_JOB, s.job, F_KARL_BATCH, (json_int_t)s.batch,
	    F_KARL_RECEIVERS, (json_int_t)n, F_KARL_DUPLICATE,
	    rc == KARL_SPOOL_DUPLICATE));
	karl_send_free(&s);
	return rc;
}

/* job_status - GET /v1/jobs/{id}. */
static int
job_status(struct httpd_req *req, const char *id)
{
	struct karl_job_info info;
	int rc;

	if ((rc = karl_spool_job_info(id, &info)) == 1)
		return httpd_reply_error(req, 404, "no such job");
	if (rc == -1)
		return httpd_reply_error(req, 503, "spool read failed");
	return httpd_reply_json(req, 200, json_pack("{s:s, s:s, s:I, s:b, "
	    "s:I, s:I, s:I, s:I, s:I}", F_KARL_JOB, id, F_KARL_KIND,
	    info.kind, F_KARL_BATCHES, (json_int_t)info.batches, F_KARL_COMPLETE,
	    info.complete, F_KARL_RECEIVERS, (json_int_t)info.receivers,
	    F_KARL_QUEUED, (json_int_t)info.queued, F_KARL_SENT, (json_int_t)info.sent,
	    F_KARL_DEFERRED, (json_int_t)info.deferred, F_KARL_FAILED,
	    (json_int_t)info.failed));
}

/* job_receivers - GET /v1/jobs/{id}/receivers (at most KARL_LIST_MAX). */
static int
job_receivers(struct httpd_req *req, const char *id)
{
	json_t *arr = json_array();
	int rc, more = 0;

	if ((rc = karl_spool_receivers(id, arr, KARL_LIST_MAX, &more)) != 0) {
		json_decref(arr);
		if (rc == 1)
			return httpd_reply_error(req, 404, "no such job");
		return httpd_reply_error(req, 503, "spool read failed");
	}
	return httpd_reply_json(req, 200, json_pack("{s:s, s:o, s:b}",
	    F_KARL_JOB, id, F_KARL_RECEIVERS, arr, F_KARL_TRUNCATED, more));
}

/* job_message - GET /v1/jobs/{id}/message. */
static int
job_message(struct httpd_req *req, const char *id)
{
	char *msg;
	size_t len;
	int rc;

	if ((rc = karl_spool_message(id, &msg, &len)) != 0)
		return rc == 1 ? httpd_reply_error(req, 404, "no such job") :
		    httpd_reply_error(req, 503, "spool read failed");
	rc = httpd_reply(req, 200, "message/rfc822", msg, len);
	free(msg);
	return rc;
}

/* karl_jobs_handler - GET /v1/jobs/{id}[/receivers|/message]. */
int
karl_jobs_handler(struct httpd_req *req)
{
	const char *rest = httpd_req_path(req) + strlen(API_KARL_JOBS);
	const char *slash = strchr(rest, '/');
	char id[KARL_JOB_MAX + 1];
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);

	if (slash != NULL && strcmp(slash, RECEIVERS_SUFFIX) != 0 &&
	    strcmp(slash, MESSAGE_SUFFIX) != 0)
		return httpd_reply_error(req, 404, "no such endpoint");
	if (n == 0 || n > KARL_JOB_MAX)
		return httpd_reply_error(req, 404, "no such job");
	memcpy(id, rest, n);
	id[n] = '\0';
	if (!karl_job_id_valid(id))
		return httpd_reply_error(req, 404, "no such job");
	if (slash == NULL)
		return job_status(req, id);
	if (strcmp(slash, MESSAGE_SUFFIX) == 0)
		return job_message(req, id);
	return job_receivers(req, id);
}
