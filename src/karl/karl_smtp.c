/* SPDX-License-Identifier: MIT */
/*
 * karl_smtp.c - the SMTP transport: an RFC 5321 client with PIPELINING
 * (RFC 2920), STARTTLS (RFC 3207) and AUTH PLAIN/LOGIN (RFC 4954) over
 * non-blocking sockets, driven by one thread (karl_deliver.c's transport
 * thread) with poll(2).
 *
 * One transaction per message (each receiver's copy differs), one
 * transaction at a time per connection, and sessions are kept and reused
 * per host.  Where the server offers PIPELINING, MAIL, RCPT and DATA go
 * in one write and the message follows the 354: two round trips per
 * message instead of four, which on loopback is most of the transport's
 * cost.  A rejected MAIL or RCPT still meets the DATA that was already
 * sent: a 354 then gets an empty message, and the session is RSET before
 * it is used again.
 *
 * Outcomes are the SMTP reply codes: the first refusal (4xx/5xx) of a
 * transaction with its text, or 0 when the connection failed or timed
 * out.  A reused session that the server closed while idle is retried
 * once on a fresh connection before anything counts.  STARTTLS follows
 * karl_relay_tls towards the relay (require: verified against the system
 * CAs, or karl_relay_ca_file's alone, and the relay's name); towards an
 * MX it is opportunistic and unverified, as Postfix's "may": a failed
 * handshake is tried once more on a fresh connection without STARTTLS.  AUTH failures are temporary: a
 * wrong password must not bounce the receivers.  MX addresses come with
 * each message (karl_deliver.c looks them up through dns.h); the relay's
 * name is resolved by a small resolver thread (getaddrinfo may block: the
 * system resolver, /etc/hosts included) with a short cache, its first
 * address used.  Each transaction may take
 * karl_smtp_timeout seconds in all, so a host that accepts and never
 * answers holds its slot that long and no longer.
 */
#include <sys/types.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "config.h"
#include "karl.h"
#include "log.h"
#include "strbuf.h"
#include "xalloc.h"

#define DIAG_MAX	1000	/* bytes of reply text kept (bounce report) */
#define LINE_MAX_SMTP	2048	/* a reply line longer than this is cut */
#define IDLE_MS		30000	/* an unused session is closed after this */
#define RESOLVE_TTL	300	/* seconds a resolved host is kept */
#define RESOLVE_SLOTS	64

enum cstate {
	C_RESOLVE,	/* waiting for the resolver thread */
	C_CONNECT,	/* non-blocking connect */
	C_GREET,	/* 220 */
	C_EHLO,
	C_HELO,		/* EHLO refused: plain SMTP */
	C_STARTTLS,
	C_HANDSHAKE,	/* TLS handshake */
	C_AUTH_PLAIN,
	C_AUTH_LOGIN,	/* 334 for the user name */
	C_AUTH_USER,	/* 334 for the password */
	C_AUTH_PASS,	/* 235 */
	C_READY,	/* idle, or running its transaction */
	C_RSET,
};

enum stage { S_MAIL, S_RCPT, S_DATA, S_BODY };

struct xfer {
	struct karl_smtp_msg msg;	/* its strings are the caller's */
	int		 code;		/* the first refusal, or the final */
	int		 failed;	/* refused; the rest is ignored */
	int		 retried;	/* once on a fresh connection */
	int		 env_sent;	/* MAIL, RCPT and DATA written */
	char		 diag[DIAG_MAX + 1];
	int64_t		 deadline;	/* ms, monotonic */
};

struct conn {
	int		 fd;
	SSL		*ssl;
	enum cstate	 st;
	char		 host[256];
	char		 ip[INET6_ADDRSTRLEN];	/* to connect to; "": resolve
						   host */
	int		 port;
	int		 plain;		/* TLS failed here once: no STARTTLS */
	int		 pipelining, starttls, auth_plain, auth_login;
	int		 tls_on, authed, used;
	unsigned	 gen;		/* counts (re)connections */
	short		 hs_want;	/* POLLIN/POLLOUT the handshake waits
					   for */
	struct xfer	*x;		/* the transaction, or NULL */
	struct xfer	*nx;		/* the next one (PIPELINING only) */
	enum stage	 expect[4];	/* replies awaited, oldest first */
	int		 nexp;
	int		 sent;		/* stages written (no PIPELINING) */
	struct strbuf	*w;		/* bytes to write */
	size_t		 woff;
	char		 r[4096];	/* bytes read, not yet lines */
	size_t		 rlen;
	char		 line[LINE_MAX_SMTP + 1];	/* this reply's last */
	size_t		 linelen;
	int		 skipping;	/* rest of an overlong line */
	int64_t		 deadline;	/* ms; 0: none */
	struct sockaddr_storage addr;
	socklen_t	 alen;
	struct conn	*next;
};

struct resolve {
	char		 host[256];
	struct sockaddr_storage addr;
	socklen_t	 alen;		/* 0: failed */
	time_t		 at;
	int		 busy;		/* the resolver thread has it */
};

struct karl_smtp {
	karl_smtp_done_fn done;
	struct conn	*conns;
	int		 nconns, max_conns, active;
	int		 wakefd;
	SSL_CTX		*ctx;		/* opportunistic: no verification */
	SSL_CTX		*vctx;		/* karl_relay_tls = require */
	char		*password;	/* relay AUTH, NULL: none */
	char		 helo[256];
	int		 relay;
	/* the resolver thread and its slots (under lock) */
	pthread_t	 resolver;
	pthread_mutex_t	 lock;
	pthread_cond_t	 cv;
	struct resolve	 res[RESOLVE_SLOTS];
	int		 stop;
};

static void conn_close(struct karl_smtp *, struct conn *);
static int conn_open(struct karl_smtp *, struct conn *);

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* read_password - the first line of path (allocated), NULL on error. */
static char *
read_password(const char *path)
{
	char line[1024];
	FILE *f;

	if ((f = fopen(path, "r")) == NULL) {
		log_warn("karl: cannot read %s", path);
		return NULL;
	}
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	return xstrdup(line);
}

/* ----------------------------------------------------------- resolver */

/* numeric - host as an address, without the resolver; 0 or -1. */
static int
numeric(const char *host, int port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return 0;
	}
	return -1;
}

/* is_numeric - host is an address literal. */
static int
is_numeric(const char *host)
{
	struct sockaddr_storage ss;
	socklen_t len;

	return numeric(host, 0, &ss, &len) == 0;
}

static void *
resolver_main(void *arg)
{
	struct karl_smtp *s = arg;
	struct addrinfo hints, *ai;
	struct resolve *r;
	char host[256];
	uint64_t one = 1;
	int i, rc;

	(void)pthread_setname_np(pthread_self(), "karl-resolve");
	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		for (i = 0, r = NULL; i < RESOLVE_SLOTS; i++)
			if (s->res[i].busy) {
				r = &s->res[i];
				break;
			}
		if (r == NULL) {
			pthread_cond_wait(&s->cv, &s->lock);
			continue;
		}
		strlcpy_chk(host, r->host, sizeof(host));
		pthread_mutex_unlock(&s->lock);
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		rc = getaddrinfo(host, NULL, &hints, &ai);
		pthread_mutex_lock(&s->lock);
		r->alen = 0;
		if (rc == 0 && ai->ai_addrlen <= sizeof(r->addr)) {
			memcpy(&r->addr, ai->ai_addr, ai->ai_addrlen);
			r->alen = ai->ai_addrlen;
		}
		if (rc == 0)
			freeaddrinfo(ai);
		r->at = time(NULL);
		r->busy = 0;
		if (write(s->wakefd, &one, sizeof(one)) < 0) {
			/* the counter is full: the poll wakes anyway */
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* lookup - c's address: 1 known (in c), 0 asked (C_RESOLVE), -1 failed. */
static int
lookup(struct karl_smtp *s, struct conn *c)
{
	struct resolve *r, *old = NULL;
	time_t now = time(NULL);
	int i, rc = 0;

	if (numeric(c->ip[0] != '\0' ? c->ip : c->host, c->port, &c->addr,
	    &c->alen) == 0)
		return 1;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < RESOLVE_SLOTS; i++) {
		r = &s->res[i];
		if (r->host[0] != '\0' && strcasecmp(r->host, c->host) == 0)
			break;
		if (!r->busy && (old == NULL || r->at < old->at))
			old = r;
	}
	if (i < RESOLVE_SLOTS && (r->busy || now - r->at < RESOLVE_TTL)) {
		if (r->busy)
			rc = 0;
		else if (r->alen == 0)
			rc = -1;
		else {
			memcpy(&c->addr, &r->addr, r->alen);
			c->alen = r->alen;
			if (c->addr.ss_family == AF_INET)
				((struct sockaddr_in *)(void *)&c->addr)->
				    sin_port = htons((uint16_t)c->port);
			else
				((struct sockaddr_in6 *)(void *)&c->addr)->
				    sin6_port = htons((uint16_t)c->port);
			rc = 1;
		}
	} else {
		if (i == RESOLVE_SLOTS)
			r = old;
		if (r == NULL)
			rc = -1;	/* every slot is being resolved */
		else {
			strlcpy_chk(r->host, c->host, sizeof(r->host));
			r->busy = 1;
			r->alen = 0;
			pthread_cond_signal(&s->cv);
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (rc == 0)
		c->st = C_RESOLVE;
	return rc;
}

/* ------------------------------------------------------------ replies */

/* xfer_end - hand x back to its owner and forget it. */
static void
xfer_end(struct karl_smtp *s, struct xfer *x, int ok)
{
	int code = x->code;

	if (!ok && code / 100 == 2)
		code = 0;
	s->active--;
	s->done(x->msg.arg, ok, code, x->diag);
	free(x);
}

/* refuse - note the first refusal of x (later ones follow from it). */
static void
refuse(struct xfer *x, int code, const char *text)
{
	if (x->failed)
		return;
	x->failed = 1;
	x->code = code;
	strlcpy_chk(x->diag, text, sizeof(x->diag));
}

/* lost - x ends undone because c failed (why). */
static void
lost(struct karl_smtp *s, struct conn *c, struct xfer *x, const char *why)
{
	if (!x->failed) {
		x->code = 0;
		if (c->ip[0] != '\0' && strcmp(c->ip, c->host) != 0)
			snprintf(x->diag, sizeof(x->diag), "%s [%s]:%d: %s",
			    c->host, c->ip, c->port, why);
		else
			snprintf(x->diag, sizeof(x->diag), "%s:%d: %s",
			    c->host, c->port, why);
	}
	xfer_end(s, x, 0);
}

/* conn_fail - the connection is lost (why).  Its transaction ends undone
 * unless a reused session died before its first reply; the next one
 * (pipelined behind it, never answered) is tried once more; those two go
 * again on a fresh connection. */
static void
conn_fail(struct karl_smtp *s, struct conn *c, const char *why)
{
	struct xfer *x = c->x, *nx = c->nx, *again[2];
	int n = 0;

	c->x = c->nx = NULL;
	if (x != NULL && c->used && c->nexp > 0 && c->expect[0] == S_MAIL &&
	    !x->retried && !x->failed)
		again[n++] = x;
	else if (x != NULL)
		lost(s, c, x, why);
	if (nx != NULL && !nx->retried)
		again[n++] = nx;
	else if (nx != NULL)
		lost(s, c, nx, why);
	conn_close(s, c);
	if (n > 0) {
		again[0]->retried = 1;
		again[0]->env_sent = 0;
		c->x = again[0];
		if (n > 1) {
			again[1]->retried = 1;
			again[1]->env_sent = 0;
			c->nx = again[1];
		}
		if (conn_open(s, c) == 0)
			return;
	}
	c->st = C_RESOLVE;	/* marked for removal: fd is -1 */
}

static void
put(struct conn *c, const char *fmt, ...) ATTR_PRINTF(2, 3);

static void
put(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	strbuf_vappendf(c->w, fmt, ap);
	va_end(ap);
}

/* body - the message, dot-stuffed, ending in CRLF "." CRLF. */
static void
body(struct conn *c, const char *p, size_t n)
{
	size_t i, run = 0;

	for (i = 0; i < n; i++)
		if (p[i] == '.' && (i == 0 || p[i - 1] == '\n')) {
			strbuf_append(c->w, p + run, i - run);
			strbuf_putc(c->w, '.');
			run = i;
		}
	strbuf_append(c->w, p + run, n - run);
	if (n < 2 || p[n - 2] != '\r' || p[n - 1] != '\n')
		strbuf_append(c->w, "\r\n", 2);
	strbuf_append(c->w, ".\r\n", 3);
}

/* send_next - without PIPELINING, the next command of the transaction. */
static void
send_next(struct conn *c)
{
	struct xfer *x = c->x;

	switch (c->sent++) {
	case 0:
		put(c, "MAIL FROM:<%s>\r\n", x->msg.mail_from);
		c->expect[c->nexp++] = S_MAIL;
		break;
	case 1:
		put(c, "RCPT TO:<%s>\r\n", x->msg.rcpt);
		c->expect[c->nexp++] = S_RCPT;
		break;
	case 2:
		put(c, "DATA\r\n");
		c->expect[c->nexp++] = S_DATA;
		break;
	}
}

/* envelope - MAIL, RCPT and DATA of x in one write (PIPELINING). */
static void
envelope(struct conn *c, struct xfer *x)
{
	put(c, "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n",
	    x->msg.mail_from, x->msg.rcpt);
	c->expect[c->nexp++] = S_MAIL;
	c->expect[c->nexp++] = S_RCPT;
	c->expect[c->nexp++] = S_DATA;
	x->env_sent = 1;
}

/* begin_next - the next transaction's envelope right behind the current
 * message: one round trip per copy while copies keep coming. */
static void
begin_next(struct conn *c)
{
	c->nx->deadline = now_ms() + (int64_t)cfg.karl_smtp_timeout * 1000;
	envelope(c, c->nx);
}

/* begin - c is ready and holds a transaction: send its envelope. */
static void
begin(struct conn *c)
{
	struct xfer *x = c->x;

	c->nexp = 0;
	c->sent = 0;
	x->deadline = now_ms() + (int64_t)cfg.karl_smtp_timeout * 1000;
	c->deadline = x->deadline;
	if (c->pipelining) {
		envelope(c, x);
		c->sent = 3;
	} else
		send_next(c);
}

/* want_tls - 1 if c should try STARTTLS, 2 if it must have it. */
static int
want_tls(const struct karl_smtp *s)
{
	if (!s->relay)
		return 1;
	if (strcmp(cfg.karl_relay_tls, "no") == 0)
		return 0;
	return strcmp(cfg.karl_relay_tls, "require") == 0 ? 2 : 1;
}

/* b64 - base64 of p (allocated). */
static char *
b64(const char *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)p,
	    (int)n);
	return out;
}

/* after_ehlo - the session's greeting is done: TLS, AUTH, then ready. */
static void
after_ehlo(struct karl_smtp *s, struct conn *c)
{
	int tls = want_tls(s);
	const char *user = cfg.karl_relay_user;
	struct strbuf *sb;
	char *t;

	if (!c->tls_on && tls > 0 && c->starttls && !c->plain) {
		put(c, "STARTTLS\r\n");
		c->st = C_STARTTLS;
		return;
	}
	if (!c->tls_on && tls == 2) {
		conn_fail(s, c, "the relay offers no STARTTLS "
		    "(karl_relay_tls = require)");
		return;
	}
	if (s->relay && !c->authed && user != NULL && *user != '\0') {
		if (c->auth_plain || !c->auth_login) {
			sb = strbuf_new(256);
			strbuf_putc(sb, '\0');
			strbuf_puts(sb, user);
			strbuf_putc(sb, '\0');
			strbuf_puts(sb, s->password ? s->password : "");
			t = b64(strbuf_str(sb), strbuf_len(sb));
			put(c, "AUTH PLAIN %s\r\n", t);
			free(t);
			strbuf_free(sb);
			c->st = C_AUTH_PLAIN;
		} else {
			put(c, "AUTH LOGIN\r\n");
			c->st = C_AUTH_LOGIN;
		}
		return;
	}
	c->st = C_READY;
	if (c->x != NULL)
		begin(c);
}

/* ehlo_line - note an extension from one line of the EHLO reply. */
static void
ehlo_line(struct conn *c, const char *t)
{
	if (strncasecmp(t, "PIPELINING", 10) == 0 && (t[10] == '\0' ||
	    t[10] == ' '))
		c->pipelining = 1;
	else if (strncasecmp(t, "STARTTLS", 8) == 0 && (t[8] == '\0' ||
	    t[8] == ' '))
		c->starttls = 1;
	else if (strncasecmp(t, "AUTH", 4) == 0 && (t[4] == ' ' ||
	    t[4] == '=')) {
		for (t += 5; *t != '\0'; t += strcspn(t, " ")) {
			t += strspn(t, " ");
			if (strncasecmp(t, "PLAIN", 5) == 0 &&
			    (t[5] == ' ' || t[5] == '\0'))
				c->auth_plain = 1;
			if (strncasecmp(t, "LOGIN", 5) == 0 &&
			    (t[5] == ' ' || t[5] == '\0'))
				c->auth_login = 1;
		}
	}
}

/* finish - the transaction's replies are all in (ended: by the reply to
 * its message, or earlier); the next one, if any, becomes current. */
static void
finish(struct karl_smtp *s, struct conn *c, int ended)
{
	struct xfer *x = c->x;
	int failed = x->failed;

	c->x = c->nx;
	c->nx = NULL;
	c->used = 1;
	c->deadline = c->x != NULL ? c->x->deadline : now_ms() + IDLE_MS;
	xfer_end(s, x, !failed);
	if (failed && !ended) {
		/* a refused MAIL or RCPT may leave the envelope open; the
		 * next envelope was not sent (it follows a message) */
		put(c, "RSET\r\n");
		c->st = C_RSET;
	} else if (c->x != NULL && !c->x->env_sent)
		begin(c);
}

/* txn_reply - a reply within a transaction. */
static void
txn_reply(struct karl_smtp *s, struct conn *c, int code, const char *text)
{
	struct xfer *x = c->x;
	enum stage st;

	if (x == NULL || c->nexp == 0) {
		conn_fail(s, c, "unexpected reply");
		return;
	}
	st = c->expect[0];
	memmove(c->expect, c->expect + 1, sizeof(c->expect[0]) *
	    (size_t)(--c->nexp));
	switch (st) {
	case S_MAIL:
	case S_RCPT:
		if (code / 100 != 2)
			refuse(x, code, text);
		if (!c->pipelining) {
			if (x->failed)
				finish(s, c, 0);
			else
				send_next(c);
		}
		return;
	case S_DATA:
		if (code != 354) {
			refuse(x, code, text);
			finish(s, c, 0);
			return;
		}
		/* after a refusal the DATA was accepted anyway: end it */
		if (x->failed)
			strbuf_append(c->w, ".\r\n", 3);
		else
			body(c, x->msg.data, x->msg.len);
		c->expect[c->nexp++] = S_BODY;
		if (c->nx != NULL && !c->nx->env_sent)
			begin_next(c);
		return;
	case S_BODY:
		if (code / 100 != 2)
			refuse(x, code, text);
		else if (!x->failed) {
			x->code = code;
			strlcpy_chk(x->diag, text, sizeof(x->diag));
		}
		finish(s, c, 1);
		return;
	}
}

/* reply - one whole reply (code, its last line) for c. */
static void
reply(struct karl_smtp *s, struct conn *c, int code, const char *text)
{
	char *u;

	if (code == 421 && c->st != C_READY) {
		if (c->x != NULL && !c->x->failed)
			refuse(c->x, code, text);
		conn_fail(s, c, text);
		return;
	}
	switch (c->st) {
	case C_GREET:
		if (code / 100 != 2) {
			conn_fail(s, c, text);
			return;
		}
		put(c, "EHLO %s\r\n", s->helo);
		c->st = C_EHLO;
		return;
	case C_EHLO:
		if (code / 100 == 2)
			after_ehlo(s, c);
		else if (!c->tls_on) {
			put(c, "HELO %s\r\n", s->helo);
			c->st = C_HELO;
		} else
			conn_fail(s, c, text);
		return;
	case C_HELO:
		if (code / 100 == 2 && want_tls(s) < 2 &&
		    !(s->relay && cfg.karl_relay_user != NULL &&
		    *cfg.karl_relay_user != '\0')) {
			c->st = C_READY;
			if (c->x != NULL)
				begin(c);
		} else
			conn_fail(s, c, text);
		return;
	case C_STARTTLS:
		if (code != 220) {
			if (want_tls(s) == 2) {
				conn_fail(s, c, text);
				return;
			}
			c->starttls = 0;	/* go on in plain text */
			after_ehlo(s, c);
			return;
		}
		c->ssl = SSL_new(s->relay && want_tls(s) == 2 ? s->vctx :
		    s->ctx);
		if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
			conn_fail(s, c, "cannot start TLS");
			return;
		}
		if (want_tls(s) == 2 && SSL_set1_host(c->ssl, c->host) != 1) {
			conn_fail(s, c, "cannot check the relay's name");
			return;
		}
		if (!is_numeric(c->host))
			SSL_set_tlsext_host_name(c->ssl, c->host);
		c->st = C_HANDSHAKE;
		c->hs_want = POLLOUT;
		return;
	case C_AUTH_PLAIN:
	case C_AUTH_PASS:
		if (code != 235) {
			/* temporary: a configuration fault, not the mail's */
			if (c->x != NULL)
				refuse(c->x, 0, text);
			conn_fail(s, c, text);
			return;
		}
		c->authed = 1;
		c->st = C_READY;
		if (c->x != NULL)
			begin(c);
		return;
	case C_AUTH_LOGIN:
	case C_AUTH_USER:
		if (code != 334) {
			if (c->x != NULL)
				refuse(c->x, 0, text);
			conn_fail(s, c, text);
			return;
		}
		u = c->st == C_AUTH_LOGIN ? b64(cfg.karl_relay_user,
		    strlen(cfg.karl_relay_user)) : b64(s->password ?
		    s->password : "", s->password ? strlen(s->password) : 0);
		put(c, "%s\r\n", u);
		free(u);
		c->st = c->st == C_AUTH_LOGIN ? C_AUTH_USER : C_AUTH_PASS;
		return;
	case C_READY:
		if (c->x == NULL) {
			/* an idle session's server gives up (421) */
			conn_fail(s, c, text);
			return;
		}
		txn_reply(s, c, code, text);
		return;
	case C_RSET:
		if (code / 100 != 2) {
			conn_fail(s, c, text);
			return;
		}
		c->st = C_READY;
		if (c->x != NULL)
			begin(c);
		return;
	default:
		conn_fail(s, c, "reply out of turn");
		return;
	}
}

/* lines - split what was read into reply lines and whole replies. */
static void
lines(struct karl_smtp *s, struct conn *c)
{
	size_t i, start = 0, n;
	unsigned gen = c->gen;
	char *l;
	int code;

	for (i = 0; i < c->rlen && c->fd != -1 && c->gen == gen; i++) {
		if (c->r[i] != '\n')
			continue;
		l = c->r + start;
		n = i - start;
		start = i + 1;
		if (n > 0 && l[n - 1] == '\r')
			n--;
		if (c->skipping) {
			c->skipping = 0;
			continue;	/* the tail of an overlong line */
		}
		if (n < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' ||
		    l[1] > '9' || l[2] < '0' || l[2] > '9' ||
		    (n > 3 && l[3] != ' ' && l[3] != '-')) {
			conn_fail(s, c, "not an SMTP reply");
			return;
		}
		if (n > LINE_MAX_SMTP)
			n = LINE_MAX_SMTP;
		memcpy(c->line, l, n);
		c->line[n] = '\0';
		log_utf8_fix(c->line);
		if (c->st == C_EHLO && n > 4)
			ehlo_line(c, c->line + 4);
		if (n > 3 && l[3] == '-')
			continue;
		code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
		reply(s, c, code, c->line);
		if (c->fd != -1 && c->gen == gen && c->st == C_HANDSHAKE) {
			/* bytes after the 220 to STARTTLS came in plain text:
			 * never read as replies (RFC 3207 5, the STARTTLS
			 * injection of CVE-2011-0411); TLS reads the socket */
			c->rlen = 0;
			c->skipping = 0;
			return;
		}
	}
	/* closed, or reconnected for a retry: what was read is void */
	if (c->fd == -1 || c->gen != gen)
		return;
	memmove(c->r, c->r + start, c->rlen - start);
	c->rlen -= start;
	if (c->rlen == sizeof(c->r)) {
		/* a line longer than the buffer: keep its start only */
		c->rlen = 0;
		c->skipping = 1;
	}
}

/* ------------------------------------------------------------------ io */

/* io_read - read what there is; -1 when the connection is gone. */
static int
io_read(struct karl_smtp *s, struct conn *c)
{
	unsigned gen = c->gen;
	ssize_t n;
	int e;

	for (;;) {
		if (c->ssl != NULL) {
			ERR_clear_error();
			n = SSL_read(c->ssl, c->r + c->rlen,
			    (int)(sizeof(c->r) - c->rlen));
			if (n <= 0) {
				e = SSL_get_error(c->ssl, (int)n);
				if (e == SSL_ERROR_WANT_READ ||
				    e == SSL_ERROR_WANT_WRITE)
					return 0;
				conn_fail(s, c, e == SSL_ERROR_ZERO_RETURN ?
				    "connection closed" : "TLS read failed");
				return -1;
			}
		} else {
			n = recv(c->fd, c->r + c->rlen, sizeof(c->r) - c->rlen,
			    0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return 0;
			if (n <= 0) {
				conn_fail(s, c, n == 0 ? "connection closed" :
				    strerror(errno));
				return -1;
			}
		}
		c->rlen += (size_t)n;
		lines(s, c);
		if (c->fd == -1 || c->gen != gen)
			return -1;
		/* STARTTLS answered: the handshake comes first */
		if (c->st == C_HANDSHAKE ||
		    (c->ssl == NULL && (size_t)n < sizeof(c->r)))
			return 0;
	}
}

/* io_write - write what is queued; -1 when the connection is gone. */
static int
io_write(struct karl_smtp *s, struct conn *c)
{
	ssize_t n;
	size_t len = strbuf_len(c->w);
	int e;

	while (c->woff < len) {
		if (c->ssl != NULL) {
			ERR_clear_error();
			n = SSL_write(c->ssl, strbuf_str(c->w) + c->woff,
			    (int)(len - c->woff));
			if (n <= 0) {
				e = SSL_get_error(c->ssl, (int)n);
				if (e == SSL_ERROR_WANT_READ ||
				    e == SSL_ERROR_WANT_WRITE)
					return 0;
				conn_fail(s, c, "TLS write failed");
				return -1;
			}
		} else {
			n = send(c->fd, strbuf_str(c->w) + c->woff,
			    len - c->woff, MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return 0;
			if (n < 0) {
				conn_fail(s, c, strerror(errno));
				return -1;
			}
		}
		c->woff += (size_t)n;
	}
	strbuf_reset(c->w);
	c->woff = 0;
	return 0;
}

/* tls_fallback - c's TLS handshake with an MX failed: opportunistic TLS
 * goes on without it (Postfix's "may"), once, on a fresh connection that
 * does not say STARTTLS.  Nothing of its transactions was sent yet; they
 * ride on the new connection (or end, should it fail at once). */
static void
tls_fallback(struct karl_smtp *s, struct conn *c)
{
	log_info("karl: %s%s%s%s:%d: TLS handshake failed; once more without "
	    "STARTTLS", c->ip[0] ? c->host : "", c->ip[0] ? " [" : "",
	    c->ip[0] ? c->ip : c->host, c->ip[0] ? "]" : "", c->port);
	c->plain = 1;
	conn_close(s, c);
	if (c->x != NULL)
		c->x->env_sent = 0;
	if (c->nx != NULL)
		c->nx->env_sent = 0;
	(void)conn_open(s, c);
}

/* handshake - go on with the TLS handshake; -1 when it failed. */
static int
handshake(struct karl_smtp *s, struct conn *c)
{
	int rc, e;

	ERR_clear_error();
	if ((rc = SSL_connect(c->ssl)) == 1) {
		c->tls_on = 1;
		c->pipelining = c->starttls = c->auth_plain = 0;
		c->auth_login = 0;
		put(c, "EHLO %s\r\n", s->helo);
		c->st = C_EHLO;
		return 0;
	}
	e = SSL_get_error(c->ssl, rc);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->hs_want = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
		return 0;
	}
	if (!s->relay && !c->plain) {
		tls_fallback(s, c);
		return -1;
	}
	conn_fail(s, c, "TLS handshake failed");
	return -1;
}

/* connected - the non-blocking connect ended. */
static int
connected(struct karl_smtp *s, struct conn *c)
{
	int err = 0, one = 1;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		conn_fail(s, c, strerror(err));
		return -1;
	}
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->st = C_GREET;
	return 0;
}

/* conn_connect - start the TCP connection to c->addr. */
static int
conn_connect(struct karl_smtp *s, struct conn *c)
{
	int fd;

	fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1) {
		conn_fail(s, c, strerror(errno));
		return -1;
	}
	c->fd = fd;
	c->deadline = now_ms() + (int64_t)(cfg.karl_smtp_timeout < 30 ?
	    cfg.karl_smtp_timeout : 30) * 1000;
	if (connect(fd, (struct sockaddr *)&c->addr, c->alen) == -1 &&
	    errno != EINPROGRESS) {
		conn_fail(s, c, strerror(errno));
		return -1;
	}
	c->st = C_CONNECT;
	return 0;
}

/* conn_open - (re)connect c to its host; 0, or -1 when its transaction
 * has already been ended. */
static int
conn_open(struct karl_smtp *s, struct conn *c)
{
	int rc;

	c->fd = -1;
	c->gen++;
	c->pipelining = c->starttls = c->auth_plain = c->auth_login = 0;
	c->tls_on = c->authed = c->used = 0;
	c->nexp = c->sent = 0;
	c->rlen = 0;
	c->skipping = 0;
	strbuf_reset(c->w);
	c->woff = 0;
	c->deadline = now_ms() + (int64_t)cfg.karl_smtp_timeout * 1000;
	if ((rc = lookup(s, c)) == 0)
		return 0;
	if (rc == -1) {
		c->st = C_CONNECT;
		conn_fail(s, c, "cannot resolve the host name");
		return -1;
	}
	return conn_connect(s, c);
}

static void
conn_close(struct karl_smtp *s, struct conn *c)
{
	(void)s;
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd != -1) {
		if (c->st == C_READY && c->x == NULL) {
			/* polite, and never waited for */
			(void)send(c->fd, "QUIT\r\n", 6, MSG_NOSIGNAL |
			    MSG_DONTWAIT);
		}
		close(c->fd);
		c->fd = -1;
	}
}

/* reap - free the connections that are gone. */
static void
reap(struct karl_smtp *s)
{
	struct conn **pp = &s->conns, *c;

	while ((c = *pp) != NULL) {
		if (c->fd == -1 && c->st != C_RESOLVE) {
			*pp = c->next;
			strbuf_free(c->w);
			free(c);
			s->nconns--;
		} else if (c->fd == -1 && c->x == NULL) {
			*pp = c->next;
			strbuf_free(c->w);
			free(c);
			s->nconns--;
		} else
			pp = &c->next;
	}
}

/* relay_trust - the CAs that karl_relay_tls = require trusts: the file
 * of a private CA alone when one is configured, else the system's. */
static int
relay_trust(SSL_CTX *vctx)
{
	const char *f = cfg.karl_relay_ca_file;

	if (f == NULL || *f == '\0') {
		if (SSL_CTX_set_default_verify_paths(vctx) != 1)
			log_warnx("karl: no default CA paths for the relay's "
			    "TLS");
		return 0;
	}
	if (SSL_CTX_load_verify_locations(vctx, f, NULL) != 1) {
		log_err("karl: karl_relay_ca_file %s: no certificate could "
		    "be read from it", f);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------- the API */

struct karl_smtp *
karl_smtp_new(int max_conns, karl_smtp_done_fn done)
{
	struct karl_smtp *s = xcalloc(1, sizeof(*s));
	const char *helo = cfg.karl_helo;

	if (helo == NULL || *helo == '\0')
		helo = "localhost";
	strlcpy_chk(s->helo, helo, sizeof(s->helo));
	s->relay = cfg.karl_relay_host != NULL && *cfg.karl_relay_host != '\0';
	if (cfg.karl_relay_password_file != NULL &&
	    *cfg.karl_relay_password_file != '\0' &&
	    (s->password = read_password(cfg.karl_relay_password_file)) ==
	    NULL)
		goto fail;
	if ((s->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    (s->vctx = SSL_CTX_new(TLS_client_method())) == NULL)
		panic("karl: SSL_CTX_new failed");
	SSL_CTX_set_verify(s->ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_verify(s->vctx, SSL_VERIFY_PEER, NULL);
	if (relay_trust(s->vctx) == -1)
		goto fail;
	SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION);
	SSL_CTX_set_min_proto_version(s->vctx, TLS1_2_VERSION);
	s->done = done;
	s->max_conns = max_conns > 0 ? max_conns : 1;
	if ((s->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		panic("karl: eventfd: %s", strerror(errno));
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (pthread_create(&s->resolver, NULL, resolver_main, s) != 0)
		panic("karl: cannot start the resolver thread");
	return s;
fail:
	SSL_CTX_free(s->ctx);
	SSL_CTX_free(s->vctx);
	free(s->password);
	free(s);
	return NULL;
}

int
karl_smtp_start(struct karl_smtp *s, const struct karl_smtp_msg *m)
{
	struct conn *c, *idle = NULL, *lru = NULL, *stack = NULL;
	struct xfer *x;

	if (strlen(m->host) >= sizeof(c->host) || (m->addr != NULL &&
	    strlen(m->addr) >= sizeof(c->ip)))
		return -1;
	/* an idle session to the host, or one being RSET (it begins the
	 * transaction at the RSET's reply) */
	for (c = s->conns; c != NULL; c = c->next) {
		if (c->fd == -1 || c->x != NULL || (c->st != C_READY &&
		    c->st != C_RSET))
			continue;
		if (c->port == m->port && strcasecmp(c->host, m->host) == 0) {
			idle = c;
			break;
		}
		if (c->st == C_READY && (lru == NULL ||
		    c->deadline < lru->deadline))
			lru = c;
	}
	/* first choice, a pipelining session to the host whose transaction
	 * is under way: the copy goes right behind it, and one round trip
	 * carries a message and the next envelope.  Best, one whose message
	 * is not written yet (its 354 is awaited, or just came and the
	 * message waits in the buffer): the envelope then goes in the same
	 * write; else one whose message is out, whose envelope goes alone */
	for (c = s->conns; c != NULL; c = c->next) {
		if (c->fd == -1 || c->st != C_READY || !c->pipelining ||
		    c->x == NULL || !c->x->env_sent || c->nx != NULL ||
		    c->port != m->port || strcasecmp(c->host, m->host) != 0)
			continue;
		if (!(c->nexp == 1 && c->expect[0] == S_BODY) ||
		    strbuf_len(c->w) > c->woff) {
			stack = c;
			break;
		}
		if (stack == NULL)
			stack = c;
	}
	x = xcalloc(1, sizeof(*x));
	x->msg = *m;
	s->active++;
	if (stack != NULL) {
		stack->nx = x;
		/* its message is out already: the envelope follows now */
		if (stack->nexp == 1 && stack->expect[0] == S_BODY)
			begin_next(stack);
		return 0;
	}
	if (idle != NULL) {
		idle->x = x;
		if (idle->st == C_READY)
			begin(idle);
		return 0;
	}
	if (s->nconns >= s->max_conns && lru != NULL) {
		conn_close(s, lru);
		lru->st = C_CONNECT;	/* removed by reap */
		reap(s);
	}
	c = xcalloc(1, sizeof(*c));
	c->w = strbuf_new(8192);
	strlcpy_chk(c->host, m->host, sizeof(c->host));
	if (m->addr != NULL)
		strlcpy_chk(c->ip, m->addr, sizeof(c->ip));
	c->port = m->port;
	c->x = x;
	c->next = s->conns;
	s->conns = c;
	s->nconns++;
	(void)conn_open(s, c);
	return 0;
}

/* resolved - connections waiting for the resolver that can go on. */
static void
resolved(struct karl_smtp *s)
{
	struct conn *c;
	int rc;

	for (c = s->conns; c != NULL; c = c->next) {
		if (c->st != C_RESOLVE || c->fd != -1 || c->x == NULL)
			continue;
		if ((rc = lookup(s, c)) == 1)
			(void)conn_connect(s, c);
		else if (rc == -1) {
			c->st = C_CONNECT;
			conn_fail(s, c, "cannot resolve the host name");
		}
	}
}

/* events - what c waits for. */
static short
events(const struct conn *c)
{
	short ev = POLLIN;

	if (c->st == C_CONNECT)
		return POLLOUT;
	if (c->st == C_HANDSHAKE)
		return c->hs_want;
	if (strbuf_len(c->w) > c->woff)
		ev |= POLLOUT;
	return ev;
}

/* service - c's socket is ready (revents). */
static void
service(struct karl_smtp *s, struct conn *c, short revents)
{
	if (c->st == C_CONNECT) {
		if (connected(s, c) == -1)
			return;
		if (!(revents & POLLIN))
			return;
	}
	if (c->st == C_HANDSHAKE && handshake(s, c) == -1)
		return;
	if (c->st != C_HANDSHAKE && (revents & (POLLIN | POLLHUP | POLLERR)) &&
	    io_read(s, c) == -1)
		return;
	/* what the replies queued (a message after its 354) goes out at the
	 * start of the next karl_smtp_poll, after the caller has started the
	 * copies that came meanwhile: an envelope that rides behind the
	 * message then goes in the same write */
	if (c->fd != -1 && c->st != C_HANDSHAKE &&
	    strbuf_len(c->w) > c->woff && (revents & POLLOUT))
		(void)io_write(s, c);
}

void
karl_smtp_poll(struct karl_smtp *s, int ms)
{
	struct pollfd *pfd;
	struct conn **cs, *c;
	unsigned *gens;
	int64_t now = now_ms(), wait = ms;
	uint64_t v;
	int n = 0, i, rc, before = s->active;

	/* write what begin() queued before waiting for anything */
	for (c = s->conns; c != NULL; c = c->next)
		if (c->fd != -1 && c->st != C_CONNECT &&
		    c->st != C_HANDSHAKE && strbuf_len(c->w) > c->woff)
			(void)io_write(s, c);
	reap(s);
	pfd = xcalloc((size_t)s->nconns + 1, sizeof(*pfd));
	cs = xcalloc((size_t)s->nconns + 1, sizeof(*cs));
	gens = xcalloc((size_t)s->nconns + 1, sizeof(*gens));
	pfd[n].fd = s->wakefd;
	pfd[n++].events = POLLIN;
	for (c = s->conns; c != NULL; c = c->next) {
		if (c->deadline != 0 && c->deadline - now < wait)
			wait = c->deadline - now < 0 ? 0 : c->deadline - now;
		if (c->fd == -1)
			continue;
		cs[n] = c;
		gens[n] = c->gen;
		pfd[n].fd = c->fd;
		pfd[n++].events = events(c);
	}
	if (s->active < before)
		wait = 0;
	rc = poll(pfd, (nfds_t)n, (int)wait);
	if (rc > 0 && (pfd[0].revents & POLLIN)) {
		if (read(s->wakefd, &v, sizeof(v)) < 0) {
			/* nothing to read: another wake-up took it */
		}
		resolved(s);
	}
	for (i = 1; rc > 0 && i < n; i++)
		if (pfd[i].revents != 0 && cs[i]->gen == gens[i] &&
		    cs[i]->fd != -1)
			service(s, cs[i], pfd[i].revents);
	now = now_ms();
	for (c = s->conns; c != NULL; c = c->next) {
		if (c->deadline == 0 || c->deadline > now)
			continue;
		if (c->fd == -1 && c->st == C_RESOLVE && c->x != NULL) {
			c->st = C_CONNECT;
			conn_fail(s, c, "timed out resolving the host name");
		} else if (c->x != NULL) {
			c->x->retried = 1;	/* a hang is not retried */
			conn_fail(s, c, "timed out");
		}
		else if (c->fd != -1) {
			conn_close(s, c);
			c->st = C_CONNECT;	/* idle too long */
		}
	}
	reap(s);
	free(pfd);
	free(cs);
	free(gens);
}

void
karl_smtp_wakeup(struct karl_smtp *s)
{
	uint64_t one = 1;

	if (write(s->wakefd, &one, sizeof(one)) < 0) {
		/* the counter is full: the poll wakes anyway */
	}
}

int
karl_smtp_active(const struct karl_smtp *s)
{
	return s->active;
}

struct karl_smtp *
karl_smtp_free(struct karl_smtp *s)
{
	struct conn *c;

	if (s == NULL)
		return NULL;
	pthread_mutex_lock(&s->lock);
	s->stop = 1;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->resolver, NULL);
	/* transactions cut short: their owners get them back undone */
	for (c = s->conns; c != NULL; c = c->next)
		if (c->x != NULL || c->nx != NULL) {
			c->used = 0;
			if (c->x != NULL)
				c->x->retried = 1;
			if (c->nx != NULL)
				c->nx->retried = 1;
			conn_fail(s, c, "stopping");
		}
	for (c = s->conns; c != NULL; c = c->next)
		conn_close(s, c);
	while ((c = s->conns) != NULL) {
		s->conns = c->next;
		strbuf_free(c->w);
		free(c);
	}
	SSL_CTX_free(s->ctx);
	SSL_CTX_free(s->vctx);
	close(s->wakefd);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cv);
	free(s->password);
	free(s);
	return NULL;
}
