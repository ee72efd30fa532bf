/* SPDX-License-Identifier: MIT */
/*
 * smtpd_session.c - the SMTP listener and the state machine of a session.
 *
 * One event loop thread owns every session.  Commands are bounded lines
 * (SMTP_MAX_CMD_LINE); arguments of MAIL and RCPT go through smtp_parse.
 * RCPT and the end of DATA call messageserver on the worker pool: the
 * session stops reading (pipelined commands wait in its input buffer) until
 * the answer is back on the loop.  DATA is collected with dot-unstuffing
 * under smtpd_max_message; as a defence against SMTP smuggling only
 * CRLF.CRLF ends it and a bare CR or LF anywhere refuses the message (550
 * 5.6.0).  XCLIENT (from nginx) is honoured only from smtpd_xclient_hosts
 * and replaces the client address used for logging and Received:.
 * Connection limits: smtpd_max_conns in all; smtpd_max_conns_per_ip per
 * client, where the client is the TCP peer, except for the XCLIENT hosts
 * (nginx, which speaks for everyone from 127.0.0.1): their sessions are
 * counted by the address XCLIENT gives, and refused at XCLIENT.
 * Besides the idle timeouts, deadlines bound a whole session
 * (smtpd_session_deadline) and one message's data (smtpd_data_deadline),
 * and commands that make no progress (NOOP, RSET...) are counted
 * (smtpd_max_junk), so that a slow or idle client cannot keep a slot.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>

#include "bounds.h"
#include "config.h"
#include "log.h"
#include "messageserver_clnt.h"
#include "metrics.h"
#include "smtp_data.h"
#include "smtp_parse.h"
#include "smtpd.h"
#include "strbuf.h"
#include "token.h"

#define SMTPD_OUT_MAX		(64 * 1024)	/* unread replies: stop reading */
#define SMTPD_DATA_CHUNK	8192	/* take a line without LF in pieces */
#define SMTPD_HELO_MAX		255
#define SMTPD_WHY_MAX		200


enum state {
	ST_CMD,
	ST_DATA,
	ST_BUSY,		/* a job runs on the worker pool */
};

struct session {
	struct session	*next, *prev;
	struct bufferevent *bev;
	evutil_socket_t	 fd;		/* the TCP socket, under any TLS */
	char		 id[17];
	char		 peer[INET6_ADDRSTRLEN];	/* TCP peer */
	char		 client[INET6_ADDRSTRLEN];	/* XCLIENT or peer */
	char		 client_name[SMTPD_HELO_MAX + 1];
	char		 helo_name[SMTPD_HELO_MAX + 1];
	int		 counted;	/* counts towards the limits */
	int		 xclient_ok;	/* peer may send XCLIENT */
	int		 proxied;	/* client address came by XCLIENT */
	int		 helo;		/* 0, 1 HELO, 2 EHLO */
	int		 tls;
	int		 errors;
	int		 junk;		/* commands without progress */
	const char	*expired;	/* a deadline passed while busy */
	struct event	*session_ev;	/* smtpd_session_deadline */
	struct event	*data_ev;	/* smtpd_data_deadline */
	int		 closing;
	int		 dead;		/* gone while a job was running */
	int		 throttled;	/* reading paused for our output */
	int		 free_pending;	/* session_free_cb is scheduled */
	int		 linger;	/* ticks waited for TLS output */
	enum state	 state;
	/* the transaction */
	int		 mail;
	char		 mail_from[SMTP_ADDR_MAX + 1];
	int		 smtputf8;
	char		**rcpts;
	size_t		 nrcpts;
	/* DATA */
	struct smtp_data data;
	size_t		 msgsize;	/* of the last message, for logs */
	char		 msgid[17];
};

struct rcpt_job {
	struct session	*s;
	char		 addr[SMTP_ADDR_MAX + 1];
	int		 rc;
	struct ms_route	 route;
};

struct inbound_job {
	struct session	*s;
	struct strbuf	*raw;
	int		 rc;
	char		 why[SMTPD_WHY_MAX + 1];
};

static struct evconnlistener *smtpd_listener;
static struct session *sessions;
static int nsessions;
static struct metric *m_sessions, *m_open, *m_cmds, *m_limited, *m_tls;
static struct metric *m_accepted, *m_refused, *m_tempfail, *m_bytes;
static struct metric *m_rcpt_ok, *m_rcpt_bad, *m_rcpt_temp, *m_rcpt_auth;

static void session_read(struct bufferevent *, void *);
static void session_write(struct bufferevent *, void *);
static void session_event(struct bufferevent *, short, void *);

static void
reply(struct session *s, const char *fmt, ...) ATTR_PRINTF(2, 3);

static void
reply(struct session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(s->bev), fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(s->bev), "\r\n", 2);
}

static const char *
hostname(void)
{
	return cfg.smtpd_hostname[0] != '\0' ? cfg.smtpd_hostname :
	    cfg.domain;
}

/* txn_reset - forget the envelope and any collected data. */
static void
txn_reset(struct session *s)
{
	size_t i;

	for (i = 0; i < s->nrcpts; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpts = 0;
	s->mail = 0;
	s->mail_from[0] = '\0';
	s->smtputf8 = 0;
	smtp_data_end(&s->data);
}

static void
set_timeout(struct session *s, int seconds)
{
	struct timeval tv = { seconds, 0 };

	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

/* deadline_arm - ev fires in seconds, however busy the client is. */
static void
deadline_arm(struct event *ev, int seconds)
{
	struct timeval tv = { seconds, 0 };

	if (event_add(ev, &tv) == -1)
		panic("smtpd: event_add failed");
}

static void
session_free(struct session *s)
{
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	if (s->counted)
		nsessions--;
	txn_reset(s);
	bufferevent_free(s->bev);
	event_free(s->session_ev);
	event_free(s->data_ev);
	metric_add(m_open, -1);
	free(s);
}

/* session_free_cb - the deferred free; inside TLS it waits (a little)
 * until the socket below has sent our last encrypted reply too. */
static void
session_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	struct bufferevent *under = bufferevent_get_underlying(s->bev);
	struct timeval tick = { 0, 20000 };

	(void)fd;
	(void)what;
	if (under != NULL && s->linger++ < 100 &&
	    evbuffer_get_length(bufferevent_get_output(under)) > 0) {
		if (event_base_once(bufferevent_get_base(s->bev), -1,
		    EV_TIMEOUT, session_free_cb, s, &tick) == 0)
			return;
	}
	session_free(s);
}

/* session_free_later - free s from the event loop, soon. */
static void
session_free_later(struct session *s)
{
	struct timeval now = { 0, 0 };

	s->free_pending = 1;
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	if (event_base_once(bufferevent_get_base(s->bev), -1, EV_TIMEOUT,
	    session_free_cb, s, &now) == -1)
		panic("smtpd: event_base_once failed");
}

/* session_close_after_reply - close once the output has drained.  Never
 * frees s at once: callers still look at it. */
static void
session_close_after_reply(struct session *s)
{
	s->closing = 1;
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0 &&
	    !s->free_pending)
		session_free_later(s);
}

/* xclient_allowed - is addr in the comma-separated allow-list? */
static int
xclient_allowed(const char *addr)
{
	const char *p = cfg.smtpd_xclient_hosts;
	size_t n = strlen(addr);

	while (*p != '\0') {
		size_t w;

		p += strspn(p, ", ");
		w = strcspn(p, ", ");
		if (w == n && w > 0 && strncmp(p, addr, n) == 0)
			return 1;
		p += w;
	}
	return 0;
}

/* printable_word - 1 if s is 1..max bytes of visible ASCII. */
static int
printable_word(const char *s, size_t max)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if ((unsigned char)s[n] < 33 || (unsigned char)s[n] > 126)
			return 0;
	return n > 0 && n <= max;
}

/* client_count - other sessions counted for the limits whose client
 * (the TCP peer, or the XCLIENT address) is addr. */
static int
client_count(const struct session *self, const char *addr)
{
	struct session *s;
	int n = 0;

	for (s = sessions; s != NULL; s = s->next)
		if (s != self && s->counted && strcmp(s->client, addr) == 0)
			n++;
	return n;
}

/* do_xclient - nginx tells who the client is (trusted peers only). */
static void
do_xclient(struct session *s, char *args)
{
	char *tok, *save = NULL;
	char addr[INET6_ADDRSTRLEN] = "", name[SMTPD_HELO_MAX + 1] = "";
	struct in6_addr a6;
	struct in_addr a4;

	if (!s->xclient_ok) {
		log_warnx("smtpd %s: XCLIENT from %s refused", s->id, s->peer);
		reply(s, "550 5.7.0 XCLIENT not authorized");
		s->errors++;
		return;
	}
	if (s->mail) {
		reply(s, "503 5.5.1 XCLIENT not allowed in a transaction");
		s->errors++;
		return;
	}
	for (tok = strtok_r(args, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		if (strncasecmp(tok, "ADDR=", 5) == 0) {
			tok += 5;
			if (strncasecmp(tok, "IPV6:", 5) == 0)
				tok += 5;
			if ((inet_pton(AF_INET, tok, &a4) != 1 &&
			    inet_pton(AF_INET6, tok, &a6) != 1) ||
			    strlcpy_chk(addr, tok, sizeof(addr)) == -1) {
				reply(s, "501 5.5.4 bad ADDR");
				s->errors++;
				return;
			}
		} else if (strncasecmp(tok, "NAME=", 5) == 0) {
			tok += 5;
			if (!printable_word(tok, SMTPD_HELO_MAX) ||
			    tok[0] == '[')	/* [UNAVAILABLE], [TEMPUNAVAIL] */
				name[0] = '\0';
			else
				(void)strlcpy_chk(name, tok, sizeof(name));
		}
	}
	if (addr[0] != '\0') {
		/* Behind nginx this is where the per-client limit bites. */
		if (client_count(s, addr) >= cfg.smtpd_max_conns_per_ip) {
			metric_add(m_limited, 1);
			log_warnx("smtpd %s: too many connections from %s",
			    s->id, addr);
			reply(s, "421 4.7.0 %s Too many connections from your "
			    "address, try again later", hostname());
			session_close_after_reply(s);
			return;
		}
		(void)strlcpy_chk(s->client, addr, sizeof(s->client));
		s->proxied = 1;
	}
	(void)strlcpy_chk(s->client_name, name[0] ? name : "unknown",
	    sizeof(s->client_name));
	s->helo = 0;
	s->helo_name[0] = '\0';
	s->xclient_ok = 0;	/* once per connection */
	reply(s, "220 %s ESMTP", hostname());
}

/* do_helo - HELO/EHLO: a new start; EHLO lists the extensions. */
static void
do_helo(struct session *s, char *args, int ehlo)
{
	char *sp = args + strcspn(args, " ");

	*sp = '\0';
	if (!printable_word(args, SMTPD_HELO_MAX)) {
		reply(s, "501 5.5.4 Syntax: %s hostname", ehlo ? "EHLO" :
		    "HELO");
		s->errors++;
		return;
	}
	if (s->helo)
		s->junk++;	/* again, without XCLIENT or STARTTLS */
	(void)strlcpy_chk(s->helo_name, args, sizeof(s->helo_name));
	txn_reset(s);
	s->helo = ehlo ? 2 : 1;
	if (!ehlo) {
		reply(s, "250 %s", hostname());
		return;
	}
	reply(s, "250-%s", hostname());
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE %ld", cfg.smtpd_max_message);
	reply(s, "250-8BITMIME");
	reply(s, "250-SMTPUTF8");
	if (smtpd_tls_ctx != NULL && !s->tls)
		reply(s, "250-STARTTLS");
	if (s->xclient_ok)
		reply(s, "250-XCLIENT ADDR NAME HELO PROTO");
	reply(s, "250 ENHANCEDSTATUSCODES");
}

/* do_mail - MAIL FROM: start a transaction. */
static void
do_mail(struct session *s, const char *args)
{
	struct smtp_mail m;
	char err[SMTP_PARSE_ERR_MAX];
	int rc;

	if (!s->helo) {
		reply(s, "503 5.5.1 Send HELO or EHLO first");
		s->errors++;
		return;
	}
	if (s->mail) {
		reply(s, "503 5.5.1 Nested MAIL command");
		s->errors++;
		return;
	}
	if ((rc = smtp_parse_mail(args, &m, err, sizeof(err))) != 0) {
		reply(s, "%d %s", rc, err);
		s->errors++;
		return;
	}
	if (m.size > cfg.smtpd_max_message) {
		reply(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	s->mail = 1;
	s->smtputf8 = m.smtputf8;
	(void)strlcpy_chk(s->mail_from, m.addr, sizeof(s->mail_from));
	reply(s, "250 2.1.0 Ok");
}

/* rcpt_work - on a worker: ask messageserver where the address goes. */
static void
rcpt_work(void *arg)
{
	struct rcpt_job *j = arg;

	j->rc = messageserver_clnt_rcpt(smtpd_ms, j->addr, &j->route);
}

static void session_resume(struct session *);

/* rcpt_accept - addr is routed: keep it for the message. */
static void
rcpt_accept(struct session *s, const char *addr)
{
	s->rcpts = xreallocarray(s->rcpts, s->nrcpts + 1, sizeof(*s->rcpts));
	s->rcpts[s->nrcpts++] = xstrdup(addr);
	metric_add(m_rcpt_ok, 1);
	reply(s, "250 2.1.5 Ok");
}

/* rcpt_done - on the loop: answer RCPT, keep the address if routed. */
static void
rcpt_done(void *arg)
{
	struct rcpt_job *j = arg;
	struct session *s = j->s;

	s->state = ST_CMD;
	if (s->dead) {
		session_free(s);
		free(j);
		return;
	}
	switch (j->rc) {
	case MS_OK:
		rcpt_accept(s, j->addr);
		break;
	case MS_UNKNOWN:
		metric_add(m_rcpt_bad, 1);
		reply(s, "550 5.1.1 <%s>: no such group here", j->addr);
		s->errors++;	/* address harvesting costs errors */
		break;
	case MS_FOREIGN:
		metric_add(m_rcpt_bad, 1);
		reply(s, "550 5.7.1 <%s>: relay not permitted", j->addr);
		s->errors++;
		break;
	default:
		metric_add(m_rcpt_temp, 1);
		reply(s, "451 4.3.0 <%s>: cannot check the recipient now, "
		    "try again later", j->addr);
		break;
	}
	log_debug("smtpd %s: RCPT <%s> from %s: %d", s->id, j->addr,
	    s->client, j->rc);
	free(j);
	if (s->errors >= cfg.smtpd_max_errors) {
		log_warnx("smtpd %s: too many errors from %s", s->id,
		    s->client);
		reply(s, "421 4.7.0 Too many errors");
		session_close_after_reply(s);
		return;
	}
	session_resume(s);
}

/* do_rcpt - RCPT TO: parse, then route it on the worker pool. */
static void
do_rcpt(struct session *s, const char *args)
{
	struct smtp_rcpt r;
	struct rcpt_job *j;
	char err[SMTP_PARSE_ERR_MAX];
	int rc;

	if (!s->mail) {
		reply(s, "503 5.5.1 Need MAIL before RCPT");
		s->errors++;
		return;
	}
	if (s->nrcpts >= (size_t)cfg.smtpd_max_rcpts) {
		reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	if ((rc = smtp_parse_rcpt(args, s->smtputf8, &r, err,
	    sizeof(err))) != 0) {
		reply(s, "%d %s", rc, err);
		s->errors++;
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->s = s;
	if (strchr(r.addr, '@') == NULL)	/* <postmaster> */
		snprintf(j->addr, sizeof(j->addr), "postmaster@%s",
		    cfg.domain);
	else
		(void)strlcpy_chk(j->addr, r.addr, sizeof(j->addr));
	/* nginx's auth_http routed this very RCPT a moment ago. */
	if (s->proxied && smtpd_routes_take(s->client, j->addr)) {
		log_debug("smtpd %s: RCPT <%s> from %s: routed by auth_http",
		    s->id, j->addr, s->client);
		metric_add(m_rcpt_auth, 1);
		rcpt_accept(s, j->addr);
		free(j);
		return;
	}
	s->state = ST_BUSY;
	bufferevent_disable(s->bev, EV_READ);
	smtpd_worker_submit(rcpt_work, rcpt_done, j);
}

/* do_data - DATA: 354 and collect the body (data_step). */
static void
do_data(struct session *s, const char *args)
{
	if (!s->mail) {
		reply(s, "503 5.5.1 Need MAIL before DATA");
		s->errors++;
		return;
	}
	if (s->nrcpts == 0) {
		reply(s, "554 5.5.1 No valid recipients");
		s->errors++;
		return;
	}
	if (*args != '\0') {
		reply(s, "501 5.5.4 DATA takes no arguments");
		s->errors++;
		return;
	}
	s->state = ST_DATA;
	smtp_data_end(&s->data);
	smtp_data_begin(&s->data, (size_t)cfg.smtpd_max_message);
	s->msgsize = 0;
	token_random_id(s->msgid, 8);
	set_timeout(s, cfg.smtpd_data_timeout);
	deadline_arm(s->data_ev, cfg.smtpd_data_deadline);
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* do_starttls - STARTTLS: 220, then an OpenSSL filter over the socket. */
static void
do_starttls(struct session *s, const char *args)
{
	struct event_base *base = bufferevent_get_base(s->bev);
	struct bufferevent *tls;
	struct evbuffer *in = bufferevent_get_input(s->bev);
	SSL *ssl;

	if (smtpd_tls_ctx == NULL || s->tls) {
		reply(s, "502 5.5.1 STARTTLS not available");
		s->errors++;
		return;
	}
	if (*args != '\0') {
		reply(s, "501 5.5.4 STARTTLS takes no arguments");
		s->errors++;
		return;
	}
	if ((ssl = SSL_new(smtpd_tls_ctx)) == NULL) {
		reply(s, "454 4.7.0 TLS not available");
		return;
	}
	reply(s, "220 2.0.0 Ready to start TLS");
	/* Plaintext pipelined after STARTTLS must not be taken as if it
	 * came over TLS (CVE-2011-0411 and friends): drop it. */
	evbuffer_drain(in, evbuffer_get_length(in));
	bufferevent_set_timeouts(s->bev, NULL, NULL);
	tls = bufferevent_openssl_filter_new(base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tls == NULL) {
		SSL_free(ssl);
		log_warnx("smtpd %s: cannot start TLS", s->id);
		session_close_after_reply(s);
		return;
	}
	s->bev = tls;
	s->tls = 1;
	metric_add(m_tls, 1);
	/* RFC 3207 4.2: forget everything learnt before TLS. */
	txn_reset(s);
	s->helo = 0;
	s->helo_name[0] = '\0';
	bufferevent_setcb(tls, session_read, session_write, session_event, s);
	set_timeout(s, cfg.smtpd_cmd_timeout);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
}

/* session_command - one command line, without CRLF. */
static void
session_command(struct session *s, char *line)
{
	char *args = line + strcspn(line, " ");

	if (*args != '\0')
		*args++ = '\0';
	metric_add(m_cmds, 1);
	if (!strcasecmp(line, "EHLO"))
		do_helo(s, args, 1);
	else if (!strcasecmp(line, "HELO"))
		do_helo(s, args, 0);
	else if (!strcasecmp(line, "MAIL"))
		do_mail(s, args);
	else if (!strcasecmp(line, "RCPT"))
		do_rcpt(s, args);
	else if (!strcasecmp(line, "DATA"))
		do_data(s, args);
	else if (!strcasecmp(line, "RSET")) {
		txn_reset(s);
		reply(s, "250 2.0.0 Ok");
		s->junk++;
	} else if (!strcasecmp(line, "NOOP")) {
		reply(s, "250 2.0.0 Ok");
		s->junk++;
	} else if (!strcasecmp(line, "QUIT")) {
		reply(s, "221 2.0.0 Bye");
		session_close_after_reply(s);
	} else if (!strcasecmp(line, "STARTTLS"))
		do_starttls(s, args);
	else if (!strcasecmp(line, "XCLIENT"))
		do_xclient(s, args);
	else if (!strcasecmp(line, "HELP")) {
		reply(s, "214 2.0.0 See RFC 5321; mail to a group's address");
		s->junk++;
	} else if (!strcasecmp(line, "VRFY") || !strcasecmp(line, "EXPN")) {
		/* No address lookups for harvesters (RFC 5321 7.3). */
		reply(s, "502 5.5.1 %s not available", line);
		s->junk++;
	} else {
		reply(s, "502 5.5.2 Command not recognized");
		s->errors++;
	}
}

/* received_header - our trace line (RFC 5321 4.4), into sb. */
static void
received_header(struct session *s, struct strbuf *sb)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	strbuf_appendf(sb, "Received: from %s (%s [%s])\r\n"
	    "\tby %s (groups) with %s%s id %s",
	    s->helo_name, s->client_name[0] ? s->client_name : "unknown",
	    s->client, hostname(), s->smtputf8 ? "UTF8SMTP" :
	    s->helo == 2 ? "ESMTP" : "SMTP", s->tls ? "S" : "", s->msgid);
	if (s->nrcpts == 1)
		strbuf_appendf(sb, "\r\n\tfor <%s>", s->rcpts[0]);
	strbuf_appendf(sb, "; %s\r\n", date);
}

/* inbound_work - on a worker: hand the message to messageserver. */
static void
inbound_work(void *arg)
{
	struct inbound_job *j = arg;
	struct session *s = j->s;
	struct ms_envelope env = {
		.mail_from = s->mail_from,
		.rcpts = (const char *const *)s->rcpts,
		.nrcpts = s->nrcpts,
		.client_addr = s->client,
		.client_helo = s->helo_name,
		.cid = s->msgid,
	};

	/* The session does not change while its job runs (it is not
	 * reading), so borrowing its envelope here is safe. */
	j->rc = messageserver_clnt_inbound(smtpd_ms, &env, strbuf_str(j->raw),
	    strbuf_len(j->raw), j->why, sizeof(j->why));
}

/* log_disposition - one line per message, with its id as the cid. */
static void
log_disposition(struct session *s, const char *result, const char *detail)
{
	log_event(LOG_LVL_INFO, s->msgid,
	    json_pack("{s:s, s:s, s:s, s:s, s:i, s:I}", "session", s->id,
	    "client", s->client, "from", s->mail_from, "result", result,
	    "nrcpts", (int)s->nrcpts, "size", (json_int_t)s->msgsize),
	    "smtpd %s: message from <%s> (%s) %s%s%s", s->id, s->mail_from,
	    s->client, result, detail[0] ? ": " : "", detail);
}

/* inbound_done - on the loop: 250 only if messageserver committed. */
static void
inbound_done(void *arg)
{
	struct inbound_job *j = arg;
	struct session *s = j->s;
	char *p;

	s->state = ST_CMD;
	if (s->dead) {
		log_disposition(s, "client gone", "");
		strbuf_free(j->raw);
		free(j);
		session_free(s);
		return;
	}
	/* The reason goes back on the wire: one line, visible ASCII. */
	for (p = j->why; *p != '\0'; p++)
		if ((unsigned char)*p < 32 || (unsigned char)*p > 126)
			*p = '?';
	switch (j->rc) {
	case MS_OK:
		metric_add(m_accepted, 1);
		metric_add(m_bytes, (int64_t)s->msgsize);
		log_disposition(s, "queued", "");
		reply(s, "250 2.0.0 Ok: queued as %s", s->msgid);
		s->junk = 0;	/* progress */
		break;
	case MS_REFUSED:
		metric_add(m_refused, 1);
		log_disposition(s, "refused", j->why);
		reply(s, "554 5.6.0 Message refused: %s",
		    j->why[0] ? j->why : "no reason given");
		break;
	default:
		metric_add(m_tempfail, 1);
		log_disposition(s, "tempfail", "messageserver unavailable");
		reply(s, "451 4.3.0 Cannot accept the message now, "
		    "try again later");
		break;
	}
	strbuf_free(j->raw);
	free(j);
	txn_reset(s);
	session_resume(s);
}

/* data_end - the final dot: refuse, or hand over to messageserver. */
static void
data_end(struct session *s)
{
	struct inbound_job *j;

	s->state = ST_CMD;
	s->msgsize = s->data.size;
	set_timeout(s, cfg.smtpd_cmd_timeout);
	event_del(s->data_ev);
	if (s->data.bad_eol) {
		metric_add(m_refused, 1);
		log_disposition(s, "refused", "bare CR or LF");
		reply(s, "550 5.6.0 Message refused: bare CR or LF "
		    "(only CRLF line endings are allowed)");
		txn_reset(s);
		return;
	}
	if (s->data.too_big) {
		metric_add(m_refused, 1);
		log_disposition(s, "refused", "too big");
		reply(s, "552 5.3.4 Message size exceeds fixed limit");
		txn_reset(s);
		return;
	}
	if (s->data.long_line) {
		metric_add(m_refused, 1);
		log_disposition(s, "refused", "line too long");
		reply(s, "550 5.6.0 Message refused: a line is longer than "
		    "%d bytes", SMTP_MAX_DATA_LINE);
		txn_reset(s);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->raw = strbuf_new(strbuf_len(s->data.msg) + 512);
	received_header(s, j->raw);
	strbuf_append(j->raw, strbuf_str(s->data.msg),
	    strbuf_len(s->data.msg));
	smtp_data_end(&s->data);
	s->state = ST_BUSY;
	bufferevent_disable(s->bev, EV_READ);
	smtpd_worker_submit(inbound_work, inbound_done, j);
}

/*
 * data_step - feed one line (or a piece of a very long one) of DATA from
 * in to smtp_data; 1 if something was taken, 0 if more input is needed.
 */
static int
data_step(struct session *s, struct evbuffer *in)
{
	struct evbuffer_ptr eol;
	size_t len, eol_len;
	const char *buf;
	int lf = 1, last;

	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	if (eol.pos == -1) {
		lf = 0;
		if ((len = evbuffer_get_length(in)) < SMTPD_DATA_CHUNK)
			return 0;
	} else
		len = (size_t)eol.pos + 1;
	/* the line in place (contiguous), not a copy per line */
	if ((buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)len)) ==
	    NULL)
		return 0;
	if (!lf && buf[len - 1] == '\r')
		len--;		/* may be the CR of a CRLF */
	last = smtp_data_feed(&s->data, buf, len, lf);
	evbuffer_drain(in, len);
	if (last)
		data_end(s);
	return 1;
}

/*
 * quickack - acknowledge at once what just arrived.  nginx's mail proxy
 * leaves Nagle on towards us, so it holds the small last piece of a
 * message (with the final dot) until the previous piece is acknowledged,
 * and Linux delays that ACK by 40 ms: a stall on every message, which
 * capped ingest through nginx near 20 messages/s per session.  The flag
 * does not stick, so it is set on every read in DATA.
 */
static void
quickack(struct session *s)
{
#ifdef TCP_QUICKACK
	int on = 1;

	(void)setsockopt(s->fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof(on));
#else
	(void)s;
#endif
}

/* session_read - run commands (or DATA) from the input, in order. */
static void
session_read(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	struct evbuffer *in;
	size_t n;
	char *line;

	(void)bev;
	if (s->state == ST_DATA)
		quickack(s);
	for (;;) {
		if (s->closing || s->state == ST_BUSY)
			return;
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) >
		    SMTPD_OUT_MAX) {
			/* The client does not read its replies. */
			s->throttled = 1;
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		in = bufferevent_get_input(s->bev);
		if (s->state == ST_DATA) {
			if (!data_step(s, in))
				return;
			continue;
		}
		if ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) ==
		    NULL)
			break;
		if (n > SMTP_MAX_CMD_LINE) {
			reply(s, "500 5.5.2 Line too long");
			s->errors++;
		} else if (memchr(line, '\0', n) != NULL) {
			reply(s, "500 5.5.2 NUL in command");
			s->errors++;
		} else
			session_command(s, line);
		free(line);
		if (!s->closing && s->errors >= cfg.smtpd_max_errors) {
			log_warnx("smtpd %s: too many errors from %s", s->id,
			    s->client);
			reply(s, "421 4.7.0 Too many errors");
			session_close_after_reply(s);
			return;
		}
		if (!s->closing && s->junk >= cfg.smtpd_max_junk) {
			log_warnx("smtpd %s: too many commands without "
			    "progress from %s", s->id, s->client);
			reply(s, "421 4.7.0 %s Too many commands without "
			    "progress, closing connection", hostname());
			session_close_after_reply(s);
			return;
		}
	}
	/* A line that never ends must not grow without bound. */
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) >
	    SMTP_MAX_TEXT_LINE) {
		log_warnx("smtpd %s: overlong line from %s", s->id, s->client);
		reply(s, "500 5.5.2 Line too long");
		session_close_after_reply(s);
	}
}

/* session_expire - an idle timeout or a deadline (why says which, a
 * static string): 421 4.4.2 and close. */
static void
session_expire(struct session *s, const char *why)
{
	if (s->free_pending)
		return;
	if (s->closing) {
		/* It does not read our last reply either: go now. */
		session_free_later(s);
		return;
	}
	if (s->state == ST_BUSY) {
		s->expired = why;	/* the job's answer first */
		return;
	}
	log_info("smtpd %s: %s, client %s", s->id, why, s->client);
	if (s->state == ST_DATA) {
		s->msgsize = s->data.size;
		log_disposition(s, "timeout", why);
	}
	reply(s, "421 4.4.2 %s %s, closing connection", hostname(), why);
	session_close_after_reply(s);
}

static void
session_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	session_expire(arg, "Session too long");
}

static void
data_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	session_expire(arg, "Message data took too long");
}

/* session_resume - after a job: go on with pipelined input. */
static void
session_resume(struct session *s)
{
	if (s->closing)
		return;
	if (s->expired != NULL) {
		session_expire(s, s->expired);
		return;
	}
	bufferevent_enable(s->bev, EV_READ);
	session_read(s->bev, s);
}

/* session_write - output drained: close, or read again if paused. */
static void
session_write(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (s->free_pending ||
	    evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (s->closing) {
		session_free_later(s);
		return;
	}
	if (s->throttled && s->state != ST_BUSY) {
		s->throttled = 0;
		session_resume(s);
	}
}

/* session_event - EOF, errors, timeouts (421 4.4.2), TLS handshake. */
static void
session_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (s->free_pending || (what & BEV_EVENT_CONNECTED))
		return;		/* going anyway; TLS handshake done */
	if (s->state == ST_BUSY) {
		/* The job still points at us: free when it is done. */
		s->dead = 1;
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
	    !s->closing) {
		session_expire(s, "Timeout");
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		session_free(s);
}


/* smtpd_session_new - limits, then the greeting (see smtpd.h). */
void
smtpd_session_new(struct bufferevent *bev, evutil_socket_t fd,
    const char *peer)
{
	struct event_base *base = bufferevent_get_base(bev);
	struct session *s;

	s = xcalloc(1, sizeof(*s));
	token_random_id(s->id, 8);
	(void)strlcpy_chk(s->peer, peer, sizeof(s->peer));
	(void)strlcpy_chk(s->client, s->peer, sizeof(s->client));
	(void)strlcpy_chk(s->client_name, "unknown", sizeof(s->client_name));
	s->xclient_ok = xclient_allowed(s->peer);
	s->fd = fd;
	s->bev = bev;
	if ((s->session_ev = evtimer_new(base, session_deadline_cb, s)) ==
	    NULL || (s->data_ev = evtimer_new(base, data_deadline_cb, s)) ==
	    NULL)
		panic("smtpd: evtimer_new failed");
	metric_add(m_sessions, 1);
	metric_add(m_open, 1);
	bufferevent_setcb(s->bev, session_read, session_write, session_event,
	    s);
	set_timeout(s, cfg.smtpd_cmd_timeout);
	deadline_arm(s->session_ev, cfg.smtpd_session_deadline);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	if ((s->next = sessions) != NULL)
		sessions->prev = s;
	sessions = s;
	/* A proxy allowed to send XCLIENT (nginx) speaks for many clients:
	 * they are counted by their XCLIENT address instead. */
	if (nsessions >= cfg.smtpd_max_conns || (!s->xclient_ok &&
	    client_count(s, s->peer) >= cfg.smtpd_max_conns_per_ip)) {
		metric_add(m_limited, 1);
		log_warnx("smtpd %s: connection limit reached (%d open, "
		    "peer %s)", s->id, nsessions, s->peer);
		reply(s, "421 4.7.0 %s Too many connections, try again later",
		    hostname());
		session_close_after_reply(s);
		return;
	}
	s->counted = 1;
	nsessions++;
	reply(s, "220 %s ESMTP", hostname());
}

/* smtpd_accept - a new connection: its socket, then the session. */
static void
smtpd_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct event_base *base = evconnlistener_get_base(l);
	struct bufferevent *bev;
	char peer[INET6_ADDRSTRLEN] = "";
	int on = 1;

	(void)salen;
	(void)arg;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)sa)->sin_addr,
		    peer, sizeof(peer));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((struct sockaddr_in6 *)(void *)sa)->sin6_addr, peer,
		    sizeof(peer));
	/* Replies are whole lines written at once: Nagle only delays them. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	bev = bufferevent_socket_new(base, fd,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		evutil_closesocket(fd);
		return;
	}
	smtpd_session_new(bev, fd, peer);
}

void
smtpd_session_init(void)
{
	if (m_sessions != NULL)
		return;
	m_sessions = metric_counter("smtpd_sessions_total",
	    "SMTP sessions accepted", NULL);
	m_open = metric_gauge("smtpd_sessions_open", "SMTP sessions open",
	    NULL);
	m_limited = metric_counter("smtpd_sessions_limited_total",
	    "SMTP sessions refused by the connection limits", NULL);
	m_tls = metric_counter("smtpd_starttls_total",
	    "SMTP sessions that started TLS", NULL);
	m_cmds = metric_counter("smtpd_commands_total", "SMTP commands",
	    NULL);
	m_accepted = metric_counter("smtpd_messages_total",
	    "Messages by disposition", "result=\"accepted\"");
	m_refused = metric_counter("smtpd_messages_total",
	    "Messages by disposition", "result=\"refused\"");
	m_tempfail = metric_counter("smtpd_messages_total",
	    "Messages by disposition", "result=\"tempfail\"");
	m_bytes = metric_counter("smtpd_message_bytes_total",
	    "Bytes of accepted messages", NULL);
	m_rcpt_ok = metric_counter("smtpd_rcpts_total",
	    "Recipients by answer", "result=\"accepted\"");
	m_rcpt_bad = metric_counter("smtpd_rcpts_total",
	    "Recipients by answer", "result=\"rejected\"");
	m_rcpt_temp = metric_counter("smtpd_rcpts_total",
	    "Recipients by answer", "result=\"tempfail\"");
	m_rcpt_auth = metric_counter("smtpd_rcpts_from_auth_total",
	    "Recipients accepted on auth_http's lookup (smtpd_routes.c)",
	    NULL);
}

int
smtpd_listen(struct event_base *base, const char *host, int port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;

	smtpd_session_init();
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		len = sizeof(*sin6);
	} else {
		log_err("smtpd: \"%s\" is not an IP address", host);
		return -1;
	}
	smtpd_listener = evconnlistener_new_bind(base, smtpd_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    128, (struct sockaddr *)&ss, (int)len);
	if (smtpd_listener == NULL) {
		log_warn("smtpd: cannot listen on %s:%d", host, port);
		return -1;
	}
	return 0;
}

void
smtpd_close(void)
{
	if (smtpd_listener != NULL)
		evconnlistener_free(smtpd_listener);
	smtpd_listener = NULL;
}
