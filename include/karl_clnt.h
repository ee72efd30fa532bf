/* SPDX-License-Identifier: MIT */
/*
 * karl_clnt.h - karl's API as its callers (messageserver, cron jobs) see
 * it, and the encode/decode pair both sides share.
 *
 * POST /v1/send
 *	{"job": id,			1-128 of [A-Za-z0-9._:-], chosen by the
 *					caller; the same id always means the
 *					same job (retries are safe)
 *	 "batch": n,			0, 1, 2, ... in order
 *	 "last": true|false,		no batch after this one
 *	 "kind": "post"|"notice"|"digest"|"probe"|"forward"|"reply",
 *	 -- batch 0 only:
 *	 "message": base64url(RFC 5322 bytes, CRLF or LF lines),
 *	 "footer": {"text": mustache, "html": mustache},	optional
 *	 "sender": {"local": "bounces", "domain": "example.org"},
 *					envelope sender = local "+" token
 *					"@" domain ("-" when local has a "+"
 *					already), token = karl's signature
 *					over the receiver's "verp" string
 *	 "sign_domain": "example.org",	DKIM d=
 *	 -- every batch:
 *	 "receivers": [{"to": addr, "verp": opaque (<= 128 bytes),
 *	                "data": {footer variables: strings only}}, ...]}
 *					1..KARL_BATCH_MAX of them
 *	202 {"job": id, "batch": n, "receivers": count, "duplicate": bool}
 *	    only once the batch is synced to the spool; a batch already
 *	    held is a 202 with "duplicate": true and changes nothing
 *	400 {"error": ...}	malformed (do not retry)
 *	409 {"error": ...}	batch n > 0 of a job karl has not got batch
 *				n - 1 of, or a batch after the last
 *	5xx / no answer		try again later with the same job and batch
 *
 * GET /v1/jobs/{id}
 *	200 {"job", "kind", "batches", "complete", "receivers", "queued",
 *	     "sent", "deferred", "failed"}	404 unknown job
 * GET /v1/jobs/{id}/receivers
 *	200 {"job": id, "receivers": [{"to", "state", "verp", "data"}, ...],
 *	    "truncated"} (operators, tests; state queued|sent|deferred|
 *	    failed; at most 100000 receivers, "truncated": true when there
 *	    are more)
 * GET /v1/jobs/{id}/message
 *	200 message/rfc822: the message as karl holds it (before footers
 *	    and signatures)	404 unknown job
 *
 * Footer data a messageserver post carries per receiver (all strings):
 *	name, email, unsubscribe_url, unsubscribe_mailto, settings_url,
 *	group, group_url, message_url.  Karl adds List-Unsubscribe from unsubscribe_url
 *	and unsubscribe_mailto when present.
 */
#ifndef KARL_CLNT_H
#define KARL_CLNT_H

#include <stddef.h>

#include <jansson.h>

#include "bounds.h"

#define KARL_JOB_MAX		128	/* bytes of a job id */
#define KARL_BATCH_MAX		1000	/* receivers per request */
#define KARL_VERP_MAX		128	/* bytes of a receiver's verp data */
#define KARL_DATA_MAX		16	/* footer variables per receiver */
#define KARL_VALUE_MAX		2048	/* bytes of one footer variable */
#define KARL_FOOTER_MAX		16384	/* bytes of a footer template */
#define KARL_KEY_MAX		64	/* bytes of a footer variable's name */
#define KARL_BATCH_NO_MAX	99999999 /* highest batch number (8 digits) */

#define API_KARL_SEND		"/v1/send"
#define API_KARL_JOBS		"/v1/jobs/"	/* + id [+ "/receivers"|"/message"] */
#define API_KARL_STATS		"/v1/stats"	/* GET: queue and outcome counts */

#define F_KARL_JOB		"job"
#define F_KARL_BATCH		"batch"
#define F_KARL_LAST		"last"
#define F_KARL_KIND		"kind"
#define F_KARL_MESSAGE		"message"
#define F_KARL_FOOTER		"footer"
#define F_KARL_TEXT		"text"
#define F_KARL_HTML		"html"
#define F_KARL_SENDER		"sender"
#define F_KARL_LOCAL		"local"
#define F_KARL_DOMAIN		"domain"
#define F_KARL_SIGN_DOMAIN	"sign_domain"
#define F_KARL_RECEIVERS	"receivers"
#define F_KARL_TO		"to"
#define F_KARL_VERP		"verp"
#define F_KARL_DATA		"data"
#define F_KARL_DUPLICATE	"duplicate"
#define F_KARL_BATCHES		"batches"	/* GET /v1/jobs/{id} */
#define F_KARL_COMPLETE		"complete"
#define F_KARL_QUEUED		"queued"
#define F_KARL_SENT		"sent"
#define F_KARL_DEFERRED		"deferred"
#define F_KARL_FAILED		"failed"
#define F_KARL_STATE		"state"		/* .../receivers */
#define F_KARL_TRUNCATED	"truncated"	/* more than listed */

/* One receiver as the caller builds it (strings borrowed). */
struct karl_receiver {
	const char	*to;
	const char	*verp;		/* may be "" */
	json_t		*data;		/* object of strings, borrowed; NULL: {} */
};

/* The per-job part, sent with batch 0 (strings borrowed). */
struct karl_job {
	const char	*job;
	const char	*kind;
	const void	*message;
	size_t		 message_len;
	const char	*footer_text;	/* may be NULL */
	const char	*footer_html;	/* may be NULL */
	const char	*sender_local;
	const char	*sender_domain;
	const char	*sign_domain;
};

/* A decoded /v1/send body; free with karl_send_free. */
struct karl_send {
	char		*job;
	long long	 batch;
	int		 last;
	char		*kind;
	unsigned char	*message;	/* batch 0; NUL appended; else NULL */
	size_t		 message_len;
	char		*footer_text;	/* NULL when absent */
	char		*footer_html;
	char		*sender_local;	/* batch 0 */
	char		*sender_domain;
	char		*sign_domain;
	json_t		*receivers;	/* validated array, owned */
};

/* karl_kind_valid - 1 if kind is one of the names above. */
int	 karl_kind_valid(const char *kind);
/* karl_job_id_valid - 1 if id is a well-formed job id. */
int	 karl_job_id_valid(const char *id);

/* karl_send_encode - the body of one batch; job is used when batch == 0
 * (caller decrefs). */
json_t	*karl_send_encode(const struct karl_job *job, long long batch,
	    int last, const struct karl_receiver *r, size_t nr);
/* karl_send_decode - strict: every field type-checked and bounded, batch
 * 0 must carry kind, message, sender and sign_domain and later batches
 * none of message, footer, sender, sign_domain; addresses have one '@'
 * and no spaces or controls.  -1 with a reason in err (out is then
 * empty); on 0 out owns its strings. */
int	 karl_send_decode(json_t *body, struct karl_send *out, char *err,
	    size_t errlen);
void	 karl_send_free(struct karl_send *);

struct karl_clnt;

struct karl_clnt *karl_clnt_new(const char *url, const char *secret,
	    long timeout_ms);
struct karl_clnt *karl_clnt_free(struct karl_clnt *);

#define KARL_OK		0	/* 202: held (or already held) */
#define KARL_REFUSED	1	/* 400/409/413, any 4xx: will not be taken */
#define KARL_TEMPFAIL	-1	/* unreachable, timeout, 5xx, 408, 429 */

/* karl_clnt_send - POST one batch; retried by the caller on TEMPFAIL. */
int	 karl_clnt_send(struct karl_clnt *, const struct karl_job *job,
	    long long batch, int last, const struct karl_receiver *r,
	    size_t nr, char *why, size_t whylen);

#endif
