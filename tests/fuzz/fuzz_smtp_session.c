/* SPDX-License-Identifier: MIT */
/*
 * fuzz_smtp_session.c - libFuzzer target for smtpd's SMTP sessions
 * (src/smtpd/smtpd_session.c): the command dispatcher, HELO/EHLO, XCLIENT,
 * MAIL/RCPT, DATA, the limits and deadlines, driven by what a client says.
 *
 * A session runs on one end of a libevent bufferevent pair (no socket),
 * on this thread's event loop.  The worker pool is replaced by a stub
 * that runs the job at once and its done callback from the loop, as the
 * real pool does; messageserver's client is replaced at link time
 * (-Wl,--wrap): RCPT answers by the address's first byte, the end of
 * DATA by the message's length.  STARTTLS is not configured (502).
 *
 * Input: byte 0 is flags (bit 0 the peer may send XCLIENT, bit 1 another
 * session of the same peer is open and took the client address
 * 192.0.2.9 with XCLIENT, bit 2 the DATA deadline and bit 3 the session
 * deadline expire at once, bit 4 the bytes come all at once); the rest is
 * the client's bytes, written at once or a line at a time, the loop
 * running until quiet after each write, then EOF.
 * Properties: every reply line is 3 digits, ' ' or '-', at most 512
 * bytes with CRLF; the first is 220 or 421; nothing follows a final 421
 * or 221; a handed-over message starts with our Received:, has CRLF line
 * ends only and a bounded size, and at most smtpd_max_rcpts recipients;
 * every session is freed after EOF.  Seeds: tests/fuzz/smtp_session/.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "bounds.h"
#include "config.h"
#include "log.h"
#include "messageserver_clnt.h"
#include "metrics.h"
#include "smtpd.h"
#include "xalloc.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int	__wrap_messageserver_clnt_rcpt(struct messageserver_clnt *,
	    const char *, struct ms_route *);
int	__wrap_messageserver_clnt_inbound(struct messageserver_clnt *,
	    const struct ms_envelope *, const void *, size_t, char *, size_t);

/* What smtpd.c, smtpd_tls.c and smtpd_worker.c would define. */
struct messageserver_clnt *smtpd_ms;
struct ssl_ctx_st *smtpd_tls_ctx;

#define MAX_MESSAGE	4096
#define MAX_RCPTS	3

static struct event_base *base;
static struct metric *open_sessions;
static int trace;		/* FUZZ_TRACE set: print the replies */

/* A client: the far end of a pair, and what it has been told. */
struct client {
	struct bufferevent *bev;
	int		 lines;
	int		 ended;		/* a final 421 or 221 came */
};

struct stub_job {
	smtpd_job_fn	 done;
	void		*arg;
	struct event	*ev;
};

static void
quiet_log(json_t *ev)
{
	(void)ev;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	config_defaults(&cfg);
	cfg.smtpd_max_message = MAX_MESSAGE;
	cfg.smtpd_max_rcpts = MAX_RCPTS;
	cfg.smtpd_max_errors = 6;
	cfg.smtpd_max_junk = 8;
	cfg.smtpd_max_conns_per_ip = 1;
	trace = getenv("FUZZ_TRACE") != NULL;
	log_set_sink(quiet_log);
	log_set_level(LOG_LVL_DEBUG);	/* format every line, keep none */
	if ((base = event_base_new()) == NULL)
		abort();
	smtpd_session_init();
	open_sessions = metric_gauge("smtpd_sessions_open", "", NULL);
	return 0;
}

static void
stub_done(evutil_socket_t fd, short what, void *arg)
{
	struct stub_job *j = arg;

	(void)fd;
	(void)what;
	event_free(j->ev);
	j->done(j->arg);
	free(j);
}

/* smtpd_worker_submit - work now, done from the loop (as the pool). */
void
smtpd_worker_submit(smtpd_job_fn work, smtpd_job_fn done, void *arg)
{
	struct stub_job *j = xcalloc(1, sizeof(*j));

	work(arg);
	j->done = done;
	j->arg = arg;
	if ((j->ev = event_new(base, -1, 0, stub_done, j)) == NULL)
		abort();
	event_active(j->ev, EV_TIMEOUT, 1);
}

int
__wrap_messageserver_clnt_rcpt(struct messageserver_clnt *c,
    const char *addr, struct ms_route *r)
{
	(void)c;
	if (strlen(addr) > SMTP_ADDR_MAX || strchr(addr, '@') == NULL)
		abort();
	memset(r, 0, sizeof(*r));
	switch (addr[0]) {
	case 'u':
		return MS_UNKNOWN;
	case 'f':
		return MS_FOREIGN;
	case 't':
		return MS_TEMPFAIL;
	default:
		r->kind = MS_ROUTE_POST;
		return MS_OK;
	}
}

int
__wrap_messageserver_clnt_inbound(struct messageserver_clnt *c,
    const struct ms_envelope *env, const void *raw, size_t len, char *why,
    size_t whylen)
{
	const char *p = raw;
	struct in6_addr a6;
	size_t i;

	(void)c;
	if (env->nrcpts < 1 || env->nrcpts > MAX_RCPTS ||
	    strlen(env->mail_from) > SMTP_ADDR_MAX ||
	    (inet_pton(AF_INET, env->client_addr, &a6) != 1 &&
	    inet_pton(AF_INET6, env->client_addr, &a6) != 1) ||
	    env->client_helo[0] == '\0' ||
	    len > MAX_MESSAGE + 2048 || strncmp(p, "Received: from ", 15) != 0)
		abort();
	for (i = 0; i < env->nrcpts; i++)
		if (strchr(env->rcpts[i], '@') == NULL)
			abort();
	/* smtp_data refuses bare CR and LF: only CRLF reaches us */
	for (i = 0; i < len; i++)
		if ((p[i] == '\n' && (i == 0 || p[i - 1] != '\r')) ||
		    (p[i] == '\r' && (i + 1 == len || p[i + 1] != '\n')))
			abort();
	switch (len % 4) {
	case 1:
		snprintf(why, whylen, "refused\r\n\x01 %zu", len);
		return MS_REFUSED;
	case 2:
		return MS_TEMPFAIL;
	default:
		return MS_OK;
	}
}

/* client_read - check every reply line the session sends. */
static void
client_read(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line;

	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT)) !=
	    NULL) {
		if (trace)
			fprintf(stderr, "%p: %s\n", (void *)c, line);
		if (c->ended || n + 2 > 512 || n < 3 ||
		    line[0] < '2' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' ||
		    line[2] < '0' || line[2] > '9' ||
		    (n > 3 && line[3] != ' ' && line[3] != '-') ||
		    memchr(line, '\0', n) != NULL ||
		    (c->lines++ == 0 && strncmp(line, "220 ", 4) != 0 &&
		    strncmp(line, "421 ", 4) != 0))
			abort();
		if (strncmp(line, "421 ", 4) == 0 ||
		    strncmp(line, "221 ", 4) == 0)
			c->ended = 1;
		free(line);
	}
	if (evbuffer_get_length(in) > 512)
		abort();		/* a line without CRLF */
}

/* run - the loop until nothing is left to do for now. */
static void
run(void)
{
	int quiet = 0, i;

	for (i = 0; i < 100000 && quiet < 3; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE) ==
		    0)
			quiet++;
		else
			quiet = 0;
	}
}

/* client_new - a session from peer, and the client end of its pair. */
static void
client_new(struct client *c, const char *peer)
{
	struct bufferevent *pair[2];

	memset(c, 0, sizeof(*c));
	if (bufferevent_pair_new(base, BEV_OPT_DEFER_CALLBACKS, pair) == -1)
		abort();
	c->bev = pair[1];
	bufferevent_setcb(c->bev, client_read, NULL, NULL, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	smtpd_session_new(pair[0], -1, peer);
}

static void
client_send(struct client *c, const void *p, size_t n)
{
	bufferevent_write(c->bev, p, n);
	run();
}

/* client_end - EOF to the session; it must be gone soon after. */
static void
client_end(struct client *c)
{
	bufferevent_flush(c->bev, EV_WRITE, BEV_FINISHED);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct client c, other;
	const char *peer;
	size_t off = 1;
	int i;

	if (size < 1)
		return 0;
	peer = (data[0] & 1) ? "127.0.0.1" : "192.0.2.1";
	cfg.smtpd_data_deadline = (data[0] & 4) ? 0 : 900;
	cfg.smtpd_session_deadline = (data[0] & 8) ? 0 : 1800;
	smtpd_routes_put("192.0.2.9", "demo@lists.localhost");
	if (data[0] & 2) {
		client_new(&other, peer);
		client_send(&other, "XCLIENT ADDR=192.0.2.9\r\n", 24);
	}
	/* No loop run before the first write: a deadline of 0 s and the
	 * first commands race (the timer may fire while RCPT is busy). */
	client_new(&c, peer);
	while (off < size) {
		const uint8_t *lf = memchr(data + off, '\n', size - off);
		size_t n = lf && !(data[0] & 16) ?
		    (size_t)(lf - (data + off)) + 1 : size - off;

		client_send(&c, data + off, n);
		off += n;
	}
	run();
	client_end(&c);
	if (data[0] & 2)
		client_end(&other);
	for (i = 0; i < 1000 && metric_value(open_sessions) != 0; i++)
		run();
	if (metric_value(open_sessions) != 0)
		abort();		/* a session outlived its client */
	bufferevent_free(c.bev);
	if (data[0] & 2)
		bufferevent_free(other.bev);
	run();
	return 0;
}
