/* SPDX-License-Identifier: MIT */
/*
 * messageserver.h - private interface between messageserver's parts:
 * recipient routing (messageserver_rcpt.c), MIME parsing
 * (messageserver_mime.c), the posting pipeline (messageserver_post.c:
 * policy, hold, reject, archive), archiving (messageserver_archive.c),
 * notices (messageserver_notice.c), composing messages
 * (messageserver_compose.c), the members' copy (messageserver_outgoing.c),
 * the hand-over to karl (messageserver_fanout.c) and the HTTP handlers
 * (messageserver_inbound.c, messageserver_posts.c).  Limits are named
 * here.
 */
#ifndef MESSAGESERVER_H
#define MESSAGESERVER_H

#include <stddef.h>

#include "cmdaddr.h"
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
#define MS_LOOPHDR_MAX		4096	/* bytes of List-Id / X-Loop kept */
/* Levels of message/rfc822 read into for the body (a forward of a
 * forward of ...); deeper ones are skipped: GMime built them already,
 * this only bounds our own recursion. */
#define MS_EMBED_DEPTH		16
/* the envelope sender of every copy: bounces+<token>@<group's domain>
 * (karl joins the token with '+'), at most 8 + 49 octets, within RFC
 * 5321's 64 whatever the group's name; docs/bounces.md */
#define MS_BOUNCE_LOCAL		"bounces"

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
	/* loop and automation markers (NULL when absent) */
	char	*list_ids;		/* every List-Id, one per line */
	char	*x_loops;		/* every X-Loop, one per line */
	char	*auto_submitted;	/* RFC 3834 */
	char	*precedence;
	int	 autoreply;		/* X-Autoreply / X-Autorespond seen */
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
/* messageserver_field_line - 1 if the line at l (up to e, its LF or the
 * end of the bytes) can be in a header block: a field ("name:", obsolete
 * spaces before the colon allowed) or a continuation.  The parser and the
 * members' copy find the end of a header block with it alike. */
int	 messageserver_field_line(const char *l, const char *e);
/* messageserver_mime_subject_key - the threading key of a subject
 * (returns allocated, caller frees; not yet lower-cased). */
char	*messageserver_mime_subject_key(const char *subject);

/* A message entering the pipeline, whatever its source (borrowed). */
struct ms_submission {
	const char		*source;	/* email|web|feed|system */
	const char		*mail_from;	/* envelope; "" null sender */
	const unsigned char	*raw;
	size_t			 rawlen;
	const struct ms_parsed	*p;
	int			 special;	/* a special notice */
	const char		*cid;
};

/* The settings of a group the pipeline needs. */
struct ms_group {
	char	id[24];
	char	name[MS_ADDR_MAX + 1];
	char	domain[MS_ADDR_MAX + 1];
	char	title[256];
	char	subject_tag[80];
	char	who_can_post[16];	/* members|moderators|anyone */
	char	nonmember_posts[16];	/* reject|moderate */
	char	reply_to[24];
	char	dmarc_rewrite[16];	/* when_needed|always|never */
	int	moderate_all;
	int	moderate_new_topics;
	int	allow_attachments;
	long	max_message_size;
	long	max_attachment_size;	/* decoded bytes; 0: no limit */
	int	pending_expiry_days;
	int	archived;		/* status archived: no new posts */
};

/* Outcome of one submission in one group. */
struct ms_result {
	const char	*status;	/* archived|duplicate|held|rejected|
					   dropped */
	const char	*reason;	/* why held/rejected/dropped, or "" */
	long long	 number;	/* archived or duplicate */
	long long	 topic_id;
	long long	 pending_id;	/* held */
	int		 queued;	/* may have written an outbox row:
					   the fan-out has work */
};

/* The poster as a group knows them ("" when not). */
struct ms_sender {
	char	account_id[24];
	char	role[16];		/* owner|moderator|member */
	char	posting[32];		/* memberships.posting */
	int	member;			/* an active membership */
	int	banned;			/* by address or domain */
};

/* What the pipeline reads about a submission in a group before it
 * decides, in the same query: a duplicate, and the poster by From. */
struct ms_post_ctx {
	char		 dup[16];	/* "", "archived" or "held" */
	long long	 dup_id;	/* its number, or the pending id */
	long long	 dup_topic;
	struct ms_sender sd;
};

/* messageserver_group_load - group name@domain into *g; 1 found, 0 not,
 * -1 database error. */
int	 messageserver_group_load(struct db *d, const char *domain,
	    const char *name, struct ms_group *g);
/* messageserver_post_group - the pipeline for one group, inside the
 * caller's transaction: duplicates, loops, sender and policy, then hold,
 * reject (with a notice), drop, or archive (and queue the fan-out).
 * 0 with *res filled, -1 on a database failure (the caller rolls back). */
int	 messageserver_post_group(struct db *d, const struct ms_group *g,
	    const struct ms_submission *s, struct ms_result *res);
/* messageserver_post_prepare - group name@domain into *g and what the
 * pipeline reads about s in it into *ctx, in one query; 1 found, 0 no
 * such group, -1 database error.  messageserver_post_prepared is then
 * messageserver_post_group without that query. */
int	 messageserver_post_prepare(struct db *d, const char *domain,
	    const char *name, const struct ms_submission *s,
	    struct ms_group *g, struct ms_post_ctx *ctx);
int	 messageserver_post_prepared(struct db *d, const struct ms_group *g,
	    const struct ms_submission *s, const struct ms_post_ctx *ctx,
	    struct ms_result *res);

/* Outcome of archiving to one group. */
struct ms_archived {
	long long	id;		/* messages.id */
	long long	number;
	long long	topic_id;
	int		queued;		/* an outbox row for the fan-out */
};

/* messageserver_archive_topic - the topic p belongs to in group gid
 * (reply or same subject) into topic; 1 found, 0 a new topic, -1 error. */
int	 messageserver_archive_topic(struct db *d, const char *gid,
	    const struct ms_parsed *p, char *topic, size_t len);
/* messageserver_archive_store - store s in group gid inside the caller's
 * open transaction on d, in topic (from messageserver_archive_topic; ""
 * starts one), and unless no_email queue it for the fan-out when some
 * member takes mail; 0 with *out filled, or -1 (logged; the caller rolls
 * back). */
int	 messageserver_archive_store(struct db *d, const char *gid,
	    const struct ms_submission *s, const char *topic, int no_email,
	    struct ms_archived *out);
/* messageserver_bytea_hex - "\x" + hex of data, a bytea parameter
 * (db.h passes text only; allocated). */
char	*messageserver_bytea_hex(const void *data, size_t len);
/* messageserver_hashtags - the #tags of a subject, at most max, each
 * MS_HASHTAG_LEN + 1 bytes; returns how many. */
size_t	 messageserver_hashtags(const char *subject,
	    char (*tags)[MS_HASHTAG_LEN + 1], size_t max);

/* A message built from fields (strings borrowed). */
struct ms_header {
	const char	*name;
	const char	*value;
};
struct ms_compose {
	const char		*from_name;
	const char		*from_addr;
	const char *const	*to;
	size_t			 nto;
	const char		*reply_to;	/* may be NULL */
	const char		*subject;
	const char		*text;
	const char		*html;		/* may be NULL */
	const char		*message_id;	/* NULL: a random one */
	const char		*msgid_domain;
	const char		*in_reply_to;	/* may be NULL */
	const struct ms_header	*headers;	/* extra, e.g. Auto-Submitted */
	size_t			 nheaders;
};
/* messageserver_compose - the RFC 5322 bytes, CRLF lines (allocated). */
char	*messageserver_compose(const struct ms_compose *, size_t *lenp);

/* Input of the members' copy of a post (strings borrowed). */
struct ms_outgoing {
	const char	*raw;
	size_t		 rawlen;
	const char	*group;
	const char	*domain;
	const char	*title;
	const char	*subject_tag;
	const char	*reply_to_policy;
	const char	*subject;	/* decoded, as archived */
	const char	*from_addr;
	const char	*from_name;
	const char	*public_url;
	long long	 number;
	int		 rewrite_from;	/* messageserver_dmarc_rewrite */
};
/* messageserver_dmarc_rewrite - 1 if From must become the list's, by the
 * group's mode (when_needed|always|never) and the poster's DMARC policy. */
int	 messageserver_dmarc_rewrite(const char *mode, const char *from_addr);
/* messageserver_outgoing - the members' copy (allocated). */
char	*messageserver_outgoing(const struct ms_outgoing *, size_t *lenp);

/* messageserver_notice_reject - tell the poster why s was not posted to
 * g (queued in the outbox inside the caller's transaction); 0 or -1. */
int	 messageserver_notice_reject(struct db *d, const struct ms_group *g,
	    const struct ms_submission *s, const char *why);
/* messageserver_notice_held - tell g's moderators that pending message
 * pending_id waits, with signed approve/reject reply addresses. */
int	 messageserver_notice_held(struct db *d, const struct ms_group *g,
	    const struct ms_submission *s, long long pending_id,
	    const char *why);
/* messageserver_notice_member_pending - tell g's moderators that
 * membership_id (address email, display name, join answer) asks to join,
 * with reply addresses group+approve-TOKEN / group+reject-TOKEN whose
 * token (purpose "moderate") has the payload "m<membership id>". */
int	 messageserver_notice_member_pending(struct db *d,
	    const struct ms_group *g, long long membership_id,
	    const char *email, const char *name, const char *answer);
/* messageserver_moderation_token - the signed token naming a held
 * message (payload "<pending id>"; allocated). */
char	*messageserver_moderation_token(long long pending_id, int days);

/* messageserver_fanout_start - the threads that hand the outbox to
 * karl; 0 or -1.  _kick wakes them after a commit; _stop joins them. */
int	 messageserver_fanout_start(int nthreads);
void	 messageserver_fanout_kick(void);
void	 messageserver_fanout_stop(void);

/*
 * Group commit (messageserver_commit.c): requests waiting for the
 * database share a transaction and are answered after its COMMIT.
 *	run	the job's work inside the shared transaction on d; -1 on a
 *		database failure (the batch is rolled back and each of its
 *		jobs runs again alone)
 *	reset	forget what a rolled-back run built (before it runs again)
 *	done	after the COMMIT (rc 0) or a failure alone (rc -1): answer
 *		and free; called exactly once per job, on a committer thread
 */
#define MS_COMMIT_THREADS	2	/* committers, one connection each */
#define MS_COMMIT_BATCH		64	/* jobs in one transaction at most */
struct ms_commit_ops {
	int	(*run)(struct db *d, void *arg);
	void	(*reset)(void *arg);
	void	(*done)(void *arg, int rc);
};
/* messageserver_commit_submit - queue a job (arg borrowed until done). */
void	 messageserver_commit_submit(const struct ms_commit_ops *, void *arg);
/* messageserver_commit_start - the committers; _stop runs what is queued,
 * then joins them. */
int	 messageserver_commit_start(void);
void	 messageserver_commit_stop(void);

/* messageserver_result_json - one group's outcome for a reply. */
json_t	*messageserver_result_json(const struct ms_group *,
	    const struct ms_result *);
/* messageserver_count - count committed outcomes (metrics; _init
 * registers the counters at start). */
void	 messageserver_count_init(void);
void	 messageserver_count(json_t *msgs);
/* messageserver_overall - the reply's status: the most significant
 * outcome in msgs, "accepted" when only other routes were. */
const char *messageserver_overall(json_t *msgs, int other);

/* Outcome of a recipient that is not a group post: an email command, the
 * owners' address, a forward rule or a bounce.  status is one of
 *	done		acted on (and answered, where a command is answered)
 *	confirm		a confirmation request was sent; nothing changed yet
 *	forwarded	handed to karl for the owners or the rule's target
 *	recorded	a bounce was recorded
 *	ignored		dropped without an answer (loop, auto-responder,
 *			unknown sender, forged or spent token, ...)
 * and reason says why, for the log and the reply to smtpd. */
struct ms_action {
	const char	*status;
	char		 reason[256];
};

/* The handlers of those recipients (one module each); each runs inside
 * the caller's transaction and returns 0 with *a filled, or -1 on a
 * database failure (the caller rolls back and smtpd answers 451).
 *	messageserver_command	group+COMMAND[-ARG] but approve/reject
 *				(messageserver_commands.c)
 *	messageserver_moderate	group+approve-TOKEN, group+reject-TOKEN
 *				(messageserver_moderate.c)
 *	messageserver_forward	group+owner and forward rules
 *				(messageserver_forward.c)
 *	messageserver_bounce_in	group+bounces[-TOKEN] (messageserver_bounce.c)
 */
int	 messageserver_command(struct db *d, const struct ms_route *r,
	    const struct ms_submission *s, struct ms_action *a);
int	 messageserver_moderate(struct db *d, const struct ms_route *r,
	    const struct ms_submission *s, struct ms_action *a);
int	 messageserver_forward(struct db *d, const struct ms_route *r,
	    const struct ms_submission *s, struct ms_action *a);
int	 messageserver_bounce_in(struct db *d, const struct ms_route *r,
	    const struct ms_submission *s, struct ms_action *a);

/*
 * Shared by the email command modules (messageserver_commands.c,
 * messageserver_commands_member.c); docs/commands.md.
 */
/* messageserver_command_reply - answer command cmd of s: text to the
 * address to, from group+owner, In-Reply-To the command, Reply-To
 * reply_to when not NULL; queued in the outbox inside the caller's
 * transaction.  0 queued, a positive reason when no reply was sent (the
 * address's hourly limit, an address of ours, an over-long address), -1
 * on a database error. */
int	 messageserver_command_reply(struct db *d, const struct ms_group *g,
	    const struct ms_submission *s, const char *to, const char *cmd,
	    const char *subject, const char *text, const char *reply_to);
/* messageserver_command_noreply - the words a log line or an action's
 * reason adds for rc of messageserver_command_reply (a constant string,
 * "" when the reply was sent). */
const char *messageserver_command_noreply(int rc);
/* messageserver_command_member - subscribe, unsubscribe, confirm-TOKEN
 * and unsubscribe-TOKEN for group g (arg the token, "" for the others),
 * for messageserver_command; 0 with *a filled, -1 on a database error. */
int	 messageserver_command_member(struct db *d, const struct ms_group *g,
	    enum cmdaddr_cmd cmd, const char *arg,
	    const struct ms_submission *s, struct ms_action *a);

/*
 * Bounce events and the bounce state of accounts
 * (messageserver_bouncestate.c), shared by the inbound bounces
 * (messageserver_bounce.c) and karl's reports (messageserver_bounces.c);
 * docs/bounces.md.  The state is per account: ok -> bouncing at a counted
 * hard bounce; soft bounces only date the run (the bouncer cron decides).
 */
#define MS_BOUNCE_REPEAT	"1 hour"	/* same bounce again: a repeat */
#define MS_BOUNCE_DIAG_MAX	1000		/* bytes of a stored diagnostic */
#define MS_BOUNCE_EVENTS_MAX	100		/* events in an account's history */
#define MS_BOUNCING_MAX		1000		/* members in a group's list */

/* What a VERP string names (karl signs it into group+bounces-TOKEN). */
enum ms_verp_kind {
	MS_VERP_POST,		/* "<account id>.<message id>" */
	MS_VERP_NOTICE,		/* "n<outbox id>" */
	MS_VERP_PROBE,		/* "p<account id>" */
};
struct ms_verp {
	enum ms_verp_kind kind;
	char	id[24];		/* account (post, probe) or outbox id */
	char	message[24];	/* messages.id of a post copy, else "" */
};
/* messageserver_verp_parse - split a VERP string into *v; 0, or -1 when
 * it is none of the forms above (decimal ids, no sign, <= 18 digits). */
int	 messageserver_verp_parse(const char *s, struct ms_verp *v);

/* One bounce event to record (strings borrowed; "" for none). */
struct ms_bounce_event {
	const char	*account_id;	/* decimal, or "" (no account) */
	const char	*email;		/* the address that bounced */
	const char	*group_id;
	const char	*type;		/* hard|soft */
	const char	*source;	/* dsn|verp|karl|probe */
	const char	*action;	/* DSN Action */
	const char	*status;	/* enhanced status, "5.1.1" */
	const char	*remote_mta;
	const char	*reporting_mta;
	const char	*diagnostic;
	const char	*message_id;	/* Message-ID of the bounced mail */
	const char	*karl_job;	/* karl's report: once per (job, email) */
	int		 counts;	/* messageserver_bounce_counts */
};
/* messageserver_bounce_counts - 1 if a failure with this enhanced status
 * ("" or NULL: none given) counts against the address (dsn_counts). */
int	 messageserver_bounce_counts(const char *status);
/* messageserver_bounce_record - store e inside the caller's transaction
 * and, if it counts, move its account's state; 1 recorded, 0 a repeat
 * (karl's job again, or the same account, message, type and status
 * within MS_BOUNCE_REPEAT), -1 on a database failure. */
int	 messageserver_bounce_record(struct db *d,
	    const struct ms_bounce_event *e);
/* messageserver_bounce_autoreply - 1 if p looks like an auto-responder's
 * answer rather than a bounce (X-Autoreply, Precedence, the subject). */
int	 messageserver_bounce_autoreply(const struct ms_parsed *p);
/* messageserver_bounce_history_handler - GET /v1/accounts/{id}/bounces;
 * messageserver_bouncing_handler - GET /v1/groups/{domain}/{name}/bouncing
 * (prefix routes: any other path under them is 404). */
int	 messageserver_bounce_history_handler(struct httpd_req *);
int	 messageserver_bouncing_handler(struct httpd_req *);

/* messageserver_bounces_handler - POST /v1/bounces (from karl). */
int	 messageserver_bounces_handler(struct httpd_req *);

/* messageserver_posts_handler - POST /v1/posts. */
int	 messageserver_posts_handler(struct httpd_req *);

/* messageserver_inbound_handler - POST /v1/inbound. */
int	 messageserver_inbound_handler(struct httpd_req *);

/*
 * Moderators' replies, the owners' address and forward rules
 * (messageserver_moderate.c, messageserver_forward.c).
 */
/* messageserver_post_release - archive a held message a moderator
 * approved and queue its fan-out, as an accepted post: the duplicate
 * check (archived only) and the archive step of the pipeline without its
 * policy; inside the caller's transaction, 0 with *res filled (archived,
 * or duplicate when that Message-ID is already archived), -1 on error. */
int	 messageserver_post_release(struct db *d, const struct ms_group *g,
	    const struct ms_submission *s, struct ms_result *res);
/* messageserver_moderation_verify - what a moderation token names
 * ("<pending id>" or "m<membership id>"; allocated, caller frees) or
 * NULL; *expired is set when the token is genuine but out of date.
 * Tokens are short (token_short_sign: "<item>.<last day>.<mac>", any
 * case) so that a reply address stays within 64 octets. */
char	*messageserver_moderation_verify(const char *token, int *expired);
/* messageserver_notice_text - a short notice (text) from group+owner to
 * one address, queued in the outbox with Auto-Submitted: auto-replied;
 * an address of one of our own domains is never written to (0, logged).
 * in_reply_to may be NULL. */
int	 messageserver_notice_text(struct db *d, const struct ms_group *g,
	    const char *to, const char *subject, const char *text,
	    const char *in_reply_to);
/* messageserver_notice_raw - queue raw (a whole message, e.g. a
 * forward) for receivers (a JSON array of {"to": ...}; borrowed), sent
 * through group g's bounce address and DKIM domain. */
int	 messageserver_notice_raw(struct db *d, const struct ms_group *g,
	    const char *raw, size_t len, json_t *receivers);
/* messageserver_own_address - 1 if addr is in cfg.domain or a domain of
 * the domains table, 0 if not, -1 on a database error. */
int	 messageserver_own_address(struct db *d, const char *addr);

#endif
