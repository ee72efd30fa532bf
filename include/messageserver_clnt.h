/* SPDX-License-Identifier: MIT */
/*
 * messageserver_clnt.h - messageserver's API as its callers (smtpd, web,
 * crawlers) see it, and the encode/decode pair both sides share.
 *
 * POST /v1/rcpt {"rcpt": addr}
 *	200 {"route": "post"|"bounce"|"command"|"owner"|"forward",
 *	     "group": name, "domain": d, "command": c, "detail": x}
 *	404 {"error": ...}	no such group or address here   (550 5.1.1)
 *	403 {"error": ...}	a domain that is not ours        (550 5.7.1)
 * POST /v1/inbound {"mail_from": a, "rcpts": [a, ...], "client_addr": ip,
 *	"client_helo": h, "cid": id, "raw": base64url(message)}
 *	200 {"status": ..., "messages": [...]} only once the message is
 *	    committed to PostgreSQL; a repeat (same Message-ID in the group)
 *	    is a 200 too, with status "duplicate", and changes nothing
 *	422 {"error": ...}	refused for good (the reason goes to the sender)
 *	5xx / no answer		try again later (451)
 * POST /v1/bounces {"job": id, "rcpt": addr, "verp": karl's VERP string
 *	(for posts "<account id>.<message id>"), "code": 550, "status":
 *	"5.1.1" or "", "diagnostic": the server's text (<= 1000 bytes)}
 *	from karl, for a receiver that failed for good (5xx, or too old)
 *	200 {"status": "recorded"|"duplicate"}	one event per (job, rcpt)
 *	400 malformed		5xx try again later
 */
#ifndef MESSAGESERVER_CLNT_H
#define MESSAGESERVER_CLNT_H

#include <stddef.h>

#include <jansson.h>

#include "bounds.h"

#define MS_ADDR_MAX	SMTP_ADDR_MAX	/* local@domain */

enum ms_route_kind {
	MS_ROUTE_POST,		/* group@domain */
	MS_ROUTE_BOUNCE,	/* VERP: group+bounces-<token>@domain */
	MS_ROUTE_COMMAND,	/* group+subscribe@domain, ... */
	MS_ROUTE_OWNER,		/* group+owner@domain */
	MS_ROUTE_FORWARD,	/* a forward rule */
};

struct ms_route {
	enum ms_route_kind kind;
	char	group[MS_ADDR_MAX + 1];
	char	domain[MS_ADDR_MAX + 1];
	char	command[64];
	char	detail[MS_ADDR_MAX + 1];
};

/* An inbound message's envelope (all strings borrowed). */
struct ms_envelope {
	const char		*mail_from;	/* "" for the null sender */
	const char *const	*rcpts;
	size_t			 nrcpts;
	const char		*client_addr;
	const char		*client_helo;
	const char		*cid;		/* may be NULL */
};

/* A decoded /v1/inbound body; free with ms_inbound_free. */
struct ms_inbound {
	char		*mail_from;
	char		**rcpts;
	size_t		 nrcpts;
	char		*client_addr;
	char		*client_helo;
	char		*cid;
	unsigned char	*raw;		/* the message bytes, NUL appended */
	size_t		 rawlen;
};

const char *ms_route_name(enum ms_route_kind);
/* ms_route_parse - "post" -> MS_ROUTE_POST...; -1 if unknown. */
int	 ms_route_parse(const char *);

/* ms_inbound_encode - the request body (caller decrefs). */
json_t	*ms_inbound_encode(const struct ms_envelope *, const void *raw,
	    size_t len);
/* ms_inbound_decode - strict: wrong or missing fields, more than
 * SMTP_MAX_RCPTS recipients, addresses over MS_ADDR_MAX, bad base64 are
 * -1 with a reason in err.  On 0, out owns its strings. */
int	 ms_inbound_decode(json_t *body, struct ms_inbound *out, char *err,
	    size_t errlen);
void	 ms_inbound_free(struct ms_inbound *);

struct messageserver_clnt;

/* messageserver_clnt_new - returns allocated. */
struct messageserver_clnt *messageserver_clnt_new(const char *url,
	    const char *secret, long timeout_ms);
struct messageserver_clnt *messageserver_clnt_free(
	    struct messageserver_clnt *);

#define MS_OK		0
#define MS_UNKNOWN	1	/* 404: no such recipient here */
#define MS_FOREIGN	2	/* 403: not our domain */
#define MS_REFUSED	3	/* 422: refused for good */
#define MS_TEMPFAIL	-1	/* unreachable, timeout, 5xx */

/* A permanent delivery failure karl reports (strings borrowed). */
struct ms_bounce {
	const char	*job;
	const char	*rcpt;
	const char	*verp;		/* may be NULL */
	int		 code;		/* SMTP reply code; 0: none (age) */
	const char	*status;	/* enhanced status code or NULL */
	const char	*diagnostic;	/* may be NULL */
};

/* messageserver_clnt_bounce - report b; MS_OK when recorded (or already
 * recorded), MS_REFUSED when messageserver will never take it. */
int	 messageserver_clnt_bounce(struct messageserver_clnt *,
	    const struct ms_bounce *b);

/* messageserver_clnt_rcpt - route addr; MS_OK fills *r. */
int	 messageserver_clnt_rcpt(struct messageserver_clnt *, const char *addr,
	    struct ms_route *r);
/* messageserver_clnt_inbound - hand over a message; MS_OK only when it is
 * committed.  MS_REFUSED puts the reason in why. */
int	 messageserver_clnt_inbound(struct messageserver_clnt *,
	    const struct ms_envelope *, const void *raw, size_t len,
	    char *why, size_t whylen);

#endif
