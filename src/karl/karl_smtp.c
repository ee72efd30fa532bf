/* SPDX-License-Identifier: MIT */
/*
 * karl_smtp.c - the SMTP transport: libcurl's SMTP through one multi
 * handle, driven by one thread (karl_deliver.c's transport thread).
 *
 * One transaction per message (each receiver's copy differs).  The multi
 * handle's connection cache reuses sessions to the same host; TCP_NODELAY
 * is set so a transaction's small commands do not wait on Nagle against
 * delayed ACKs.  STARTTLS and AUTH follow the karl_relay_* keys towards
 * the relay; towards an MX STARTTLS is opportunistic and unverified (as
 * Postfix's "may").  Outcomes are classified by the last SMTP reply code,
 * never by the CURLcode (a rejected RCPT is CURLE_SEND_ERROR, a rejected
 * DATA CURLE_WEIRD_SERVER_REPLY); the reply's text is caught through the
 * debug callback for bounce reports.  Each transaction may take
 * karl_smtp_timeout seconds in all, so a host that accepts and never
 * answers holds its slot that long and no longer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "config.h"
#include "karl.h"
#include "log.h"
#include "xalloc.h"

#define DIAG_MAX	1000	/* bytes of reply text kept (bounce report) */

struct karl_smtp;

struct xfer {
	CURL			*easy;
	struct curl_slist	*rcpt;
	const char		*data;
	size_t			 len, off;
	void			*arg;
	char			 diag[DIAG_MAX + 1];
	int			 refused;	/* diag is a 4xx/5xx */
	struct xfer		*next;		/* free or busy list */
};



struct karl_smtp {
	CURLM			*multi;
	karl_smtp_done_fn	 done;
	struct xfer		*free;
	struct xfer		*busy;		/* transactions running */
	int			 active;
	char			*password;	/* relay AUTH, NULL: none */
	char			 helo[256];
};

/* unlink_busy - take x off s's busy list. */
static void
unlink_busy(struct karl_smtp *s, struct xfer *x)
{
	struct xfer **pp;

	for (pp = &s->busy; *pp != NULL; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			return;
		}
}

/* read_body - CURLOPT_READFUNCTION over the message in memory. */
static size_t
read_body(char *buf, size_t size, size_t nmemb, void *p)
{
	struct xfer *x = p;
	size_t n = size * nmemb;

	if (n > x->len - x->off)
		n = x->len - x->off;
	memcpy(buf, x->data + x->off, n);
	x->off += n;
	return n;
}

/* on_debug - keep the last reply line the server sent (the last
 * refusal, once there is one). */
static int
on_debug(CURL *easy, curl_infotype type, char *data, size_t size, void *p)
{
	struct xfer *x = p;
	size_t n = size;

	(void)easy;
	if (type != CURLINFO_HEADER_IN)
		return 0;
	/* keep the refusal, not the 221 to the QUIT that follows it */
	if (x->refused && n > 0 && data[0] != '4' && data[0] != '5')
		return 0;
	x->refused = n > 0 && (data[0] == '4' || data[0] == '5');
	while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
		n--;
	if (n > DIAG_MAX)
		n = DIAG_MAX;
	memcpy(x->diag, data, n);
	x->diag[n] = '\0';
	return 0;
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

struct karl_smtp *
karl_smtp_new(int max_conns, karl_smtp_done_fn done)
{
	struct karl_smtp *s = xcalloc(1, sizeof(*s));
	const char *helo = cfg.karl_helo;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (helo == NULL || *helo == '\0')
		helo = "localhost";
	strlcpy_chk(s->helo, helo, sizeof(s->helo));
	if (cfg.karl_relay_password_file != NULL &&
	    *cfg.karl_relay_password_file != '\0' &&
	    (s->password = read_password(cfg.karl_relay_password_file)) ==
	    NULL) {
		free(s);
		return NULL;
	}
	s->done = done;
	s->multi = curl_multi_init();
	/* keep every idle session: one per slot at most */
	curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)max_conns);
	curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
	    (long)max_conns);
	return s;
}

/* tls_level - CURLOPT_USE_SSL for this destination. */
static long
tls_level(int relay)
{
	if (!relay)
		return CURLUSESSL_TRY;
	if (strcmp(cfg.karl_relay_tls, "no") == 0)
		return CURLUSESSL_NONE;
	if (strcmp(cfg.karl_relay_tls, "require") == 0)
		return CURLUSESSL_ALL;
	return CURLUSESSL_TRY;
}

int
karl_smtp_start(struct karl_smtp *s, const struct karl_smtp_msg *m)
{
	int relay = cfg.karl_relay_host != NULL && *cfg.karl_relay_host != '\0';
	char url[512], from[SMTP_ADDR_MAX + 512], to[SMTP_ADDR_MAX + 3];
	struct xfer *x;
	long ssl;

	if (snprintf(url, sizeof(url), strchr(m->host, ':') ?
	    "smtp://[%s]:%d/%s" : "smtp://%s:%d/%s", m->host, m->port,
	    s->helo) >= (int)sizeof(url) ||
	    snprintf(from, sizeof(from), "<%s>", m->mail_from) >=
	    (int)sizeof(from) ||
	    snprintf(to, sizeof(to), "<%s>", m->rcpt) >= (int)sizeof(to))
		return -1;
	if ((x = s->free) != NULL) {
		s->free = x->next;
		curl_easy_reset(x->easy);
	} else {
		x = xcalloc(1, sizeof(*x));
		if ((x->easy = curl_easy_init()) == NULL)
			panic("karl: curl_easy_init failed");
	}
	x->rcpt = curl_slist_append(NULL, to);
	x->data = m->data;
	x->len = m->len;
	x->off = 0;
	x->arg = m->arg;
	x->diag[0] = '\0';
	x->refused = 0;
	curl_easy_setopt(x->easy, CURLOPT_URL, url);
	curl_easy_setopt(x->easy, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(x->easy, CURLOPT_MAIL_RCPT, x->rcpt);
	curl_easy_setopt(x->easy, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(x->easy, CURLOPT_INFILESIZE_LARGE,
	    (curl_off_t)m->len);
	curl_easy_setopt(x->easy, CURLOPT_READFUNCTION, read_body);
	curl_easy_setopt(x->easy, CURLOPT_READDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT, (long)cfg.karl_smtp_timeout);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT,
	    (long)(cfg.karl_smtp_timeout < 30 ? cfg.karl_smtp_timeout : 30));
	curl_easy_setopt(x->easy, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_DEBUGFUNCTION, on_debug);
	curl_easy_setopt(x->easy, CURLOPT_DEBUGDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_VERBOSE, 1L);
	ssl = tls_level(relay);
	curl_easy_setopt(x->easy, CURLOPT_USE_SSL, ssl);
	if (ssl != CURLUSESSL_ALL) {
		/* opportunistic TLS: better than plain text, never a reason
		 * not to deliver */
		curl_easy_setopt(x->easy, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(x->easy, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (relay && cfg.karl_relay_user != NULL &&
	    *cfg.karl_relay_user != '\0') {
		curl_easy_setopt(x->easy, CURLOPT_USERNAME, cfg.karl_relay_user);
		curl_easy_setopt(x->easy, CURLOPT_PASSWORD,
		    s->password ? s->password : "");
	}
	if (curl_multi_add_handle(s->multi, x->easy) != CURLM_OK) {
		curl_slist_free_all(x->rcpt);
		x->rcpt = NULL;
		x->next = s->free;
		s->free = x;
		return -1;
	}
	x->next = s->busy;
	s->busy = x;
	s->active++;
	return 0;
}

/* finish - one transaction ended with result: classify and hand back. */
static void
finish(struct karl_smtp *s, struct xfer *x, CURLcode result)
{
	long code = 0;
	int ok;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
	ok = result == CURLE_OK && (code == 0 || code / 100 == 2);
	if (!ok && code / 100 == 2)
		code = 0;	/* transport failed after a 2xx: retry */
	if (!ok && code == 0)
		snprintf(x->diag, sizeof(x->diag), "%s",
		    curl_easy_strerror(result));
	curl_multi_remove_handle(s->multi, x->easy);
	curl_slist_free_all(x->rcpt);
	x->rcpt = NULL;
	unlink_busy(s, x);
	s->active--;
	s->done(x->arg, ok, (int)code, x->diag);
	x->next = s->free;
	s->free = x;
}

void
karl_smtp_poll(struct karl_smtp *s, int ms)
{
	CURLMsg *msg;
	char *x;
	int running, left, ended = 0;

	curl_multi_perform(s->multi, &running);
	while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &x);
		finish(s, (struct xfer *)(void *)x, msg->data.result);
		ended++;
	}
	/* what ended goes to its owner first; then wait for activity */
	if (ended == 0)
		curl_multi_poll(s->multi, NULL, 0, ms, NULL);
}

void
karl_smtp_wakeup(struct karl_smtp *s)
{
	curl_multi_wakeup(s->multi);
}

int
karl_smtp_active(const struct karl_smtp *s)
{
	return s->active;
}

struct karl_smtp *
karl_smtp_free(struct karl_smtp *s)
{
	struct xfer *x;

	if (s == NULL)
		return NULL;
	/* transactions cut short: their owners get them back undone */
	while ((x = s->busy) != NULL)
		finish(s, x, CURLE_ABORTED_BY_CALLBACK);
	while ((x = s->free) != NULL) {
		s->free = x->next;
		curl_easy_cleanup(x->easy);
		free(x);
	}
	curl_multi_cleanup(s->multi);
	free(s->password);
	free(s);
	return NULL;
}
