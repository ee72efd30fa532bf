/* SPDX-License-Identifier: MIT */
/*
 * messageserver.h - private interface between messageserver's parts:
 * recipient routing (messageserver_rcpt.c), MIME parsing
 * (messageserver_mime.c), archiving (messageserver_archive.c) and the
 * inbound handler (messageserver_inbound.c).  Limits are named here.
 */
#ifndef MESSAGESERVER_H
#define MESSAGESERVER_H

#include <stddef.h>

#include "httpd.h"
#include "messageserver_clnt.h"

struct db;

#define MS_BODY_MAX		(1024 * 1024)	/* bytes of stored body text */
#define MS_HTML_MAX		(1024 * 1024)	/* bytes of stored body html */
#define MS_SUBJECT_MAX		998		/* bytes of a stored subject */
#define MS_NAME_MAX		200		/* bytes of a from name */
#define MS_MSGID_MAX		998		/* a Message-ID */
#define MS_REFS_MAX		100		/* References kept */
#define MS_ATTACH_MAX		64		/* attachments per message */
#define MS_HASHTAGS_MAX		10		/* hashtags per message */
#define MS_HASHTAG_LEN		64		/* bytes of one hashtag */
#define MS_THREAD_DAYS		"30 days"	/* subject threading window */

/* Result of routing one address; status is the HTTP answer. */
enum ms_rcpt_status {
	MS_RCPT_OK = 200,
	MS_RCPT_FOREIGN = 403,
	MS_RCPT_UNKNOWN = 404,
	MS_RCPT_TEMPFAIL = 503,
};

/* messageserver_rcpt_resolve - route addr using d; fills *r when the
 * result is MS_RCPT_OK. */
enum ms_rcpt_status messageserver_rcpt_resolve(struct db *d,
	    const char *addr, struct ms_route *r);
/* messageserver_rcpt_handler - POST /v1/rcpt. */
int	 messageserver_rcpt_handler(struct httpd_req *);

struct ms_attachment {
	char		*filename;	/* UTF-8 */
	char		*content_type;	/* type/subtype */
	int		 inline_disp;	/* Content-Disposition: inline */
	char		*content_id;	/* may be NULL */
	unsigned char	*data;
	size_t		 len;
	char		 sha256[65];
};

/* A parsed message: every string valid UTF-8 without NUL, owned. */
struct ms_parsed {
	char	*message_id;		/* without <> */
	char	*subject;
	char	*from_name;
	char	*from_addr;
	char	*sent_at;		/* ISO 8601 or NULL */
	char	*in_reply_to;		/* without <>, or NULL */
	char	**refs;			/* References, in order */
	size_t	 nrefs;
	char	*body_text;
	char	*body_html;		/* may be NULL */
	struct ms_attachment *att;
	size_t	 natt;
};

/* messageserver_mime_init - g_mime_init, once at start-up. */
void	 messageserver_mime_init(void);
void	 messageserver_mime_fini(void);
/* messageserver_mime_parse - parse raw; -1 when it is not a message.
 * fallback_from is used when there is no From; msgid_domain names a
 * generated Message-ID.  On 0, free p with messageserver_mime_free. */
int	 messageserver_mime_parse(const void *raw, size_t len,
	    const char *fallback_from, const char *msgid_domain,
	    struct ms_parsed *p);
void	 messageserver_mime_free(struct ms_parsed *);
/* messageserver_mime_subject_key - the threading key of a subject
 * (returns allocated, caller frees; not yet lower-cased). */
char	*messageserver_mime_subject_key(const char *subject);

/* Outcome of archiving to one group. */
struct ms_archived {
	long long	number;
	long long	topic_id;
	int		duplicate;
};

/* messageserver_archive_store - store p in group_id inside the caller's
 * open transaction on d; 0 with *out filled, or -1 (logged; the caller
 * rolls back). */
int	 messageserver_archive_store(struct db *d, const char *group_id,
	    const struct ms_parsed *p, const void *raw, size_t rawlen,
	    struct ms_archived *out);

/* messageserver_inbound_handler - POST /v1/inbound. */
int	 messageserver_inbound_handler(struct httpd_req *);

#endif
