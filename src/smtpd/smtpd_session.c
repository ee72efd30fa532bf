/* SPDX-License-Identifier: MIT */
/*
 * smtpd_session.c - the SMTP listener and the command loop of a session.
 *
 * Every line is bounded (SMTP_MAX_CMD_LINE); a longer one, too many errors
 * or five idle minutes end the session with a reply first.  XCLIENT (from
 * nginx) is honoured only from smtpd_xclient_hosts and replaces the peer
 * address used for logging and policy.  Mail transactions are answered with
 * a temporary failure until delivery to messageserver is built: the sender
 * keeps the message and retries, nothing is lost.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "bounds.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "smtpd.h"
#include "token.h"

#define SMTPD_MAX_ERRORS	10
#define SMTPD_IDLE_SECONDS	300

struct session {
	struct bufferevent *bev;
	char		 id[17];
	char		 peer[INET6_ADDRSTRLEN];
	int		 xclient_ok;	/* peer may send XCLIENT */
	int		 helo;
	int		 errors;
	int		 closing;
};

static struct evconnlistener *smtpd_listener;
static struct metric *m_sessions, *m_open, *m_cmds;

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

static void
session_free(struct session *s)
{
	bufferevent_free(s->bev);
	metric_add(m_open, -1);
	free(s);
}

/* session_close_after_reply - close once the output has drained. */
static void
session_close_after_reply(struct session *s)
{
	s->closing = 1;
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		session_free(s);
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

static void
do_xclient(struct session *s, char *args)
{
	char *tok, *save = NULL;
	struct in6_addr a6;
	struct in_addr a4;

	if (!s->xclient_ok) {
		log_warnx("smtpd %s: XCLIENT from %s refused", s->id, s->peer);
		reply(s, "550 5.7.0 XCLIENT not authorized");
		return;
	}
	for (tok = strtok_r(args, " ", &save); tok != NULL;
	    tok = strtok_r(NULL, " ", &save)) {
		if (strncasecmp(tok, "ADDR=", 5) != 0)
			continue;
		tok += 5;
		if (strncasecmp(tok, "IPV6:", 5) == 0)
			tok += 5;
		if (inet_pton(AF_INET, tok, &a4) != 1 &&
		    inet_pton(AF_INET6, tok, &a6) != 1) {
			reply(s, "501 5.5.4 bad ADDR");
			return;
		}
		strlcpy_chk(s->peer, tok, sizeof(s->peer));
	}
	s->helo = 0;
	s->xclient_ok = 0;	/* once per connection */
	reply(s, "220 %s ESMTP", cfg.domain);
}

/* session_command - one command line, without CRLF. */
static void
session_command(struct session *s, char *line)
{
	char *args = line + strcspn(line, " ");

	if (*args != '\0')
		*args++ = '\0';
	metric_add(m_cmds, 1);
	if (!strcasecmp(line, "EHLO")) {
		s->helo = 1;
		reply(s, "250-%s", cfg.domain);
		reply(s, "250-PIPELINING");
		reply(s, "250-SIZE %ld", cfg.smtpd_max_message);
		reply(s, "250-8BITMIME");
		if (s->xclient_ok)
			reply(s, "250-XCLIENT ADDR NAME HELO PROTO");
		reply(s, "250 ENHANCEDSTATUSCODES");
	} else if (!strcasecmp(line, "HELO")) {
		s->helo = 1;
		reply(s, "250 %s", cfg.domain);
	} else if (!strcasecmp(line, "XCLIENT")) {
		do_xclient(s, args);
	} else if (!strcasecmp(line, "NOOP") || !strcasecmp(line, "RSET")) {
		reply(s, "250 2.0.0 OK");
	} else if (!strcasecmp(line, "QUIT")) {
		reply(s, "221 2.0.0 Bye");
		session_close_after_reply(s);
	} else if (!strcasecmp(line, "MAIL") || !strcasecmp(line, "RCPT") ||
	    !strcasecmp(line, "DATA")) {
		reply(s, "451 4.3.2 Mail service is starting; try again later");
	} else if (!strcasecmp(line, "VRFY")) {
		reply(s, "252 2.5.0 Cannot verify, send some mail");
	} else {
		reply(s, "502 5.5.2 Command not recognized");
		s->errors++;
	}
}

static void
session_read(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line;

	while (!s->closing &&
	    (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		if (n > SMTP_MAX_CMD_LINE) {
			reply(s, "500 5.5.2 Line too long");
			s->errors++;
		} else if (memchr(line, '\0', n) != NULL) {
			reply(s, "500 5.5.2 NUL in command");
			s->errors++;
		} else
			session_command(s, line);
		free(line);
		if (!s->closing && s->errors >= SMTPD_MAX_ERRORS) {
			log_warnx("smtpd %s: too many errors from %s", s->id,
			    s->peer);
			reply(s, "421 4.7.0 Too many errors");
			session_close_after_reply(s);
		}
	}
	if (s->closing)
		return;
	/* A line that never ends must not grow without bound. */
	if (evbuffer_get_length(in) > SMTP_MAX_TEXT_LINE) {
		log_warnx("smtpd %s: overlong line from %s", s->id, s->peer);
		reply(s, "500 5.5.2 Line too long");
		session_close_after_reply(s);
	}
}

static void
session_write(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (s->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		session_free(s);
}

static void
session_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if ((what & BEV_EVENT_TIMEOUT) && !s->closing) {
		reply(s, "421 4.4.2 Idle too long");
		session_close_after_reply(s);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		session_free(s);
}

static void
smtpd_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct event_base *base = evconnlistener_get_base(l);
	struct timeval idle = { SMTPD_IDLE_SECONDS, 0 };
	struct session *s;

	(void)salen;
	(void)arg;
	s = xcalloc(1, sizeof(*s));
	token_random_id(s->id, 8);
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)sa)->sin_addr,
		    s->peer, sizeof(s->peer));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((struct sockaddr_in6 *)(void *)sa)->sin6_addr, s->peer,
		    sizeof(s->peer));
	s->xclient_ok = xclient_allowed(s->peer);
	s->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		evutil_closesocket(fd);
		free(s);
		return;
	}
	metric_add(m_sessions, 1);
	metric_add(m_open, 1);
	bufferevent_setcb(s->bev, session_read, session_write, session_event,
	    s);
	bufferevent_set_timeouts(s->bev, &idle, &idle);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	reply(s, "220 %s ESMTP", cfg.domain);
}

int
smtpd_listen(struct event_base *base, const char *host, int port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;

	m_sessions = metric_counter("smtpd_sessions_total",
	    "SMTP sessions accepted", NULL);
	m_open = metric_gauge("smtpd_sessions_open", "SMTP sessions open",
	    NULL);
	m_cmds = metric_counter("smtpd_commands_total", "SMTP commands",
	    NULL);
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
