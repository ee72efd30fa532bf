/* SPDX-License-Identifier: MIT */
/*
 * fuzz_karlsmtp.c - libFuzzer target for karl's SMTP client
 * (src/karl/karl_smtp.c): the input is what a server says.
 *
 * A listening socket on loopback plays the server.  For each input two
 * transactions start towards it; the input, cut at each '\n' after the
 * first 16 bytes' worth of lines, is written to the accepted connection a
 * piece per poll round, then the server side closes.  The client must end
 * each transaction exactly once (done called once per transaction, with
 * a code 0..599 and a NUL-terminated diagnostic), whatever it was told,
 * soon after the server goes away.  Seeds: tests/fuzz/karlsmtp/.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "karl.h"
#include "xalloc.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int lfd = -1;
static int port;
static int ended[2];

static void
done(void *arg, int ok, int code, const char *diag)
{
	int *n = arg;

	(void)ok;
	if (code < 0 || code > 599 || diag == NULL ||
	    strlen(diag) > 1000 || ++*n > 1)
		abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	(void)argc;
	(void)argv;
	/* as in every daemon (daemon.c): a peer gone is an error, not a
	 * signal (OpenSSL writes without MSG_NOSIGNAL) */
	signal(SIGPIPE, SIG_IGN);
	config_defaults(&cfg);
	cfg.karl_smtp_timeout = 5;
	free(cfg.karl_relay_host);
	cfg.karl_relay_host = xstrdup("127.0.0.1");
	free(cfg.karl_relay_user);
	cfg.karl_relay_user = xstrdup("u");
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(lfd, 16) == -1 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &len) == -1)
		abort();
	port = ntohs(sin.sin_port);
	(void)fcntl(lfd, F_SETFL, O_NONBLOCK);
	return 0;
}

/* take - accept pending connections: the first is returned (if *c is
 * -1), the others (retries, extra sessions) are closed at once. */
static void
take(int *c)
{
	int fd;

	while ((fd = accept(lfd, NULL, NULL)) != -1) {
		if (*c == -1)
			*c = fd;
		else
			close(fd);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char msg[] = "Subject: x\r\n\r\n.dot\r\nbody\r\n";
	static struct karl_smtp *s;
	struct karl_smtp_msg m[2];
	size_t off = 0, n;
	const uint8_t *nl;
	char buf[4096];
	int c = -1, i;

	/* one client for the whole run, as in karl: sessions come and go */
	if (s == NULL && (s = karl_smtp_new(2, done)) == NULL)
		abort();
	ended[0] = ended[1] = 0;
	for (i = 0; i < 2; i++) {
		memset(&m[i], 0, sizeof(m[i]));
		m[i].host = "127.0.0.1";
		m[i].port = port;
		m[i].mail_from = "bounces@example.org";
		m[i].rcpt = "r@example.net";
		m[i].data = msg;
		m[i].len = sizeof(msg) - 1;
		m[i].arg = &ended[i];
		if (karl_smtp_start(s, &m[i]) == -1)
			abort();
	}
	for (i = 0; i < 200 && c == -1; i++) {
		karl_smtp_poll(s, 1);
		take(&c);
	}
	if (c == -1)
		abort();
	while (off < size && karl_smtp_active(s) > 0) {
		nl = memchr(data + off, '\n', size - off);
		n = nl != NULL ? (size_t)(nl - (data + off)) + 1 : size - off;
		if (send(c, data + off, n, MSG_NOSIGNAL) < 0)
			break;
		off += n;
		for (i = 0; i < 3; i++) {
			karl_smtp_poll(s, 0);
			take(&c);
		}
		/* drain what the client wrote, so it never blocks */
		while (recv(c, buf, sizeof(buf), MSG_DONTWAIT) > 0)
			;
	}
	close(c);
	c = -2;
	/* the server is gone: every transaction ends, exactly once, soon */
	for (i = 0; i < 2000 && (ended[0] == 0 || ended[1] == 0); i++) {
		karl_smtp_poll(s, 1);
		take(&c);
	}
	if (ended[0] != 1 || ended[1] != 1)
		abort();
	return 0;
}
