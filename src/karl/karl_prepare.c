/* SPDX-License-Identifier: MIT */
/*
 * karl_prepare.c - one receiver's copy of a job's message.
 *
 * Per job (karl_prepare_job): the footer templates are compiled and the
 * message analysed for the footer once.  Per receiver: the footers are
 * rendered with the receiver's data (text unescaped, HTML escaped) and
 * spliced in (mime_footer), List-Unsubscribe and List-Unsubscribe-Post
 * (RFC 2369, 8058) are prepended from the receiver's unsubscribe_url and
 * unsubscribe_mailto, and the result is signed with every DKIM key of the
 * job's sign_domain (rsa-sha256 and ed25519-sha256 when both are there).
 * The envelope sender is local "+" token "@" domain ("-" when local has
 * an extension already, as "demo+bounces" has), token signing the
 * receiver's verp string (key "verp" derived from the system secret), so
 * messageserver can map a bounce back to its member.  The token is the
 * short form (token_short_sign: payload "." 80-bit MAC in base32, case-
 * insensitive) when the verp string allows it, as messageserver's
 * "<account>.<message>" does, keeping the local part near RFC 5321's 64
 * octets; other strings get the full token.  Thread-safe: the
 * workers share one job state.  The private keys are read once, here.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gmime/gmime.h>

#include "config.h"
#include "dkim.h"
#include "karl.h"
#include "log.h"
#include "mime_footer.h"
#include "mustache.h"
#include "strbuf.h"
#include "token.h"

#define DKIM_KEYS_MAX	16	/* keys in dkim_keys */
#define DOMAIN_KEYS_MAX	4	/* signatures on one message */
#define LISTU_VALUE_MAX	900	/* one URL in List-Unsubscribe (998 line) */

struct karl_jobctx {
	char			 id[KARL_JOB_MAX + 1];
	char			*msg;		/* CRLF lines */
	size_t			 len;
	struct mime_footer_plan	*plan;		/* NULL: no footer */
	struct mustache		*text, *html;
	char			*local, *domain;
	time_t			 created;
	const struct dkim_key	*keys[DOMAIN_KEYS_MAX];
	size_t			 nkeys;
	struct dkim_body_cache	*bc;		/* the body every copy shares */
	int			 want_html;	/* a text/html part takes it */
};

static struct dkim_key *prep_keys[DKIM_KEYS_MAX];
static size_t prep_nkeys;
static unsigned char prep_verp_key[TOKEN_KEY_LEN];

/* load_key - one "domain selector pem-file" triple; 0 or -1. */
static int
load_key(char *triple)
{
	char *f[3], *p = triple, err[256];
	size_t n = 0;

	while (n < 3 && (f[n] = strtok_r(p, " \t", &p)) != NULL)
		n++;
	if (n != 3 || strtok_r(p, " \t", &p) != NULL) {
		log_err("karl: dkim_keys: \"%s\" is not \"domain selector "
		    "pem-file\"", triple);
		return -1;
	}
	if (prep_nkeys == DKIM_KEYS_MAX) {
		log_err("karl: dkim_keys: more than %d keys", DKIM_KEYS_MAX);
		return -1;
	}
	if ((prep_keys[prep_nkeys] = dkim_key_load(f[0], f[1], f[2], err,
	    sizeof(err))) == NULL) {
		log_err("karl: dkim key %s for %s: %s", f[2], f[0], err);
		return -1;
	}
	prep_nkeys++;
	return 0;
}

int
karl_prepare_init(void)
{
	char *list, *t, *p;
	int rc = 0;

	g_mime_init();		/* mime_footer parses with GMime */
	token_derive(cfg.secret ? cfg.secret : "",
	    cfg.secret ? strlen(cfg.secret) : 0, "verp", prep_verp_key);
	if (cfg.dkim_keys == NULL || cfg.dkim_keys[0] == '\0')
		return 0;
	list = xstrdup(cfg.dkim_keys);
	for (p = list; rc == 0 && (t = strtok_r(p, ",", &p)) != NULL;) {
		while (isspace((unsigned char)*t))
			t++;
		if (*t != '\0')
			rc = load_key(t);
	}
	free(list);
	if (rc == 0)
		log_info("karl: %zu DKIM keys loaded", prep_nkeys);
	return rc;
}

void
karl_prepare_fini(void)
{
	size_t i;

	for (i = 0; i < prep_nkeys; i++)
		prep_keys[i] = dkim_key_free(prep_keys[i]);
	prep_nkeys = 0;
	g_mime_shutdown();
}

/* to_crlf - msg with every bare LF made CRLF (allocated). */
static char *
to_crlf(const char *msg, size_t len, size_t *outlen)
{
	struct strbuf *sb = strbuf_new(len + len / 32 + 16);
	size_t i, start = 0;

	for (i = 0; i < len; i++) {
		if (msg[i] != '\n' || (i > 0 && msg[i - 1] == '\r'))
			continue;
		strbuf_append(sb, msg + start, i - start);
		strbuf_append(sb, "\r\n", 2);
		start = i + 1;
	}
	strbuf_append(sb, msg + start, len - start);
	return strbuf_detach(sb, outlen);
}

/* compile - a footer template of the job (NULL when absent or broken:
 * the job goes out without that footer rather than not at all). */
static struct mustache *
compile(const char *id, const json_t *footer, const char *which, int flags)
{
	const char *tmpl = json_string_value(json_object_get(footer, which));
	struct mustache *m;
	char err[256];

	if (tmpl == NULL)
		return NULL;
	if ((m = mustache_compile(tmpl, strlen(tmpl), NULL, flags, err,
	    sizeof(err))) == NULL)
		log_warnx("karl: job %s: %s footer left out: %s", id, which,
		    err);
	return m;
}

/* body_cache - the DKIM hash state of the body up to the first footer
 * (the whole body without one): it is the same in every copy, since the
 * list headers go above it.  dkim_sign_many compares the bytes before
 * using it, so a copy whose body differs is still signed right. */
static struct dkim_body_cache *
body_cache(const struct karl_jobctx *j)
{
	const char *p = j->msg, *e;
	size_t len = j->len;

	if (j->plan != NULL)
		p = mime_footer_prefix(j->plan, &len);
	if ((e = memmem(p, len, "\r\n\r\n", 4)) == NULL)
		return NULL;
	e += 4;
	return dkim_body_cache_new(e, len - (size_t)(e - p));
}

struct karl_jobctx *
karl_prepare_job(const char *id, const json_t *rec, char *msg, size_t len)
{
	struct karl_jobctx *j = xcalloc(1, sizeof(*j));
	const json_t *footer = json_object_get(rec, F_KARL_FOOTER);
	const json_t *sender = json_object_get(rec, F_KARL_SENDER);
	const char *sd = json_string_value(json_object_get(rec,
	    F_KARL_SIGN_DOMAIN));
	char err[256];
	size_t i;

	strlcpy_chk(j->id, id, sizeof(j->id));
	j->msg = to_crlf(msg, len, &j->len);
	free(msg);
	j->local = xstrdup(json_string_value(json_object_get(sender,
	    F_KARL_LOCAL)) ? json_string_value(json_object_get(sender,
	    F_KARL_LOCAL)) : "");
	j->domain = xstrdup(json_string_value(json_object_get(sender,
	    F_KARL_DOMAIN)) ? json_string_value(json_object_get(sender,
	    F_KARL_DOMAIN)) : "");
	j->created = (time_t)json_integer_value(json_object_get(rec,
	    "created"));
	j->text = compile(id, footer, F_KARL_TEXT, MUSTACHE_NOESCAPE);
	j->html = compile(id, footer, F_KARL_HTML, 0);
	if ((j->text != NULL || j->html != NULL) &&
	    (j->plan = mime_footer_plan(j->msg, j->len, err,
	    sizeof(err))) == NULL)
		log_warnx("karl: job %s: no footer: %s", id, err);
	for (i = 0; sd != NULL && i < prep_nkeys; i++)
		if (j->nkeys < DOMAIN_KEYS_MAX &&
		    strcasecmp(dkim_key_domain(prep_keys[i]), sd) == 0)
			j->keys[j->nkeys++] = prep_keys[i];
	if (sd != NULL && *sd != '\0' && j->nkeys == 0)
		log_warnx("karl: job %s: no DKIM key for %s; sent unsigned",
		    id, sd);
	j->want_html = j->plan != NULL && mime_footer_wants_html(j->plan);
	if (j->nkeys > 0)
		j->bc = body_cache(j);
	return j;
}

struct karl_jobctx *
karl_prepare_job_free(struct karl_jobctx *j)
{
	if (j == NULL)
		return NULL;
	free(j->msg);
	dkim_body_cache_free(j->bc);
	mime_footer_plan_free(j->plan);
	mustache_free(j->text);
	mustache_free(j->html);
	free(j->local);
	free(j->domain);
	free(j);
	return NULL;
}

time_t
karl_jobctx_created(const struct karl_jobctx *j)
{
	return j->created;
}

size_t
karl_jobctx_size(const struct karl_jobctx *j)
{
	return j->len;
}

/* header_safe - may s go inside <...> of a header field? */
static int
header_safe(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++, n++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f || *s == '<' ||
		    *s == '>')
			return 0;
	return n > 0 && n <= LISTU_VALUE_MAX;
}

/* list_headers - List-Unsubscribe (and -Post with an https URL) from the
 * receiver's data into sb. */
static void
list_headers(const json_t *data, struct strbuf *sb)
{
	const char *url = json_string_value(json_object_get(data,
	    "unsubscribe_url"));
	const char *mailto = json_string_value(json_object_get(data,
	    "unsubscribe_mailto"));

	if (url != NULL && (strncasecmp(url, "https://", 8) != 0 ||
	    !header_safe(url)))
		url = NULL;
	if (mailto != NULL && (strncasecmp(mailto, "mailto:", 7) != 0 ||
	    !header_safe(mailto)))
		mailto = NULL;
	if (url == NULL && mailto == NULL)
		return;
	strbuf_puts(sb, "List-Unsubscribe: ");
	if (url != NULL)
		strbuf_appendf(sb, "<%s>%s", url, mailto ? ",\r\n " : "");
	if (mailto != NULL)
		strbuf_appendf(sb, "<%s>", mailto);
	strbuf_puts(sb, "\r\n");
	/* one-click (RFC 8058) needs the https URL and a DKIM signature */
	if (url != NULL)
		strbuf_puts(sb, "List-Unsubscribe-Post: "
		    "List-Unsubscribe=One-Click\r\n");
}

/* render - a footer with data into a new string (NULL: none). */
static char *
render(const struct karl_jobctx *j, const struct mustache *m,
    const json_t *data)
{
	struct strbuf *sb;
	char err[256];

	if (m == NULL)
		return NULL;
	sb = strbuf_new(1024);
	if (mustache_render(m, data, sb, err, sizeof(err)) == -1) {
		log_warnx("karl: job %s: footer not rendered: %s", j->id, err);
		strbuf_free(sb);
		return NULL;
	}
	return strbuf_detach(sb, NULL);
}

int
karl_prepare_message(const struct karl_jobctx *j, const json_t *rec,
    char **msg, size_t *len, char **mail_from, char *err, size_t errlen)
{
	const json_t *data = json_object_get(rec, F_KARL_DATA);
	const char *verp = json_string_value(json_object_get(rec, F_KARL_VERP));
	struct strbuf *head, *out;
	char *text, *html, *body = NULL, *tok;
	size_t blen = 0;
	time_t now = time(NULL);
	int n;

	*msg = *mail_from = NULL;
	if (data == NULL || !json_is_object(data))
		data = NULL;
	if (verp == NULL)
		verp = "";
	if ((tok = token_short_sign(prep_verp_key, "verp", verp)) == NULL &&
	    (tok = token_sign(prep_verp_key, "verp", verp, strlen(verp),
	    0)) == NULL) {
		snprintf(err, errlen, "verp string too long");
		return -1;
	}
	*mail_from = xasprintf("%s%c%s@%s", j->local,
	    strchr(j->local, '+') != NULL ? '-' : '+', tok, j->domain);
	free(tok);

	if (j->plan != NULL) {
		json_t *empty = data ? NULL : json_object();

		text = render(j, j->text, data ? data : empty);
		/* a text/plain post has no place for the HTML footer */
		html = j->want_html ? render(j, j->html, data ? data :
		    empty) : NULL;
		json_decref(empty);
		if (text != NULL || html != NULL)
			body = mime_footer_apply(j->plan, text ? text : "",
			    html, &blen);
		free(text);
		free(html);
	}

	head = strbuf_new(1024);
	if (data != NULL)
		list_headers(data, head);
	out = strbuf_new((body ? blen : j->len) + strbuf_len(head) + 2048);
	if (j->nkeys > 0) {
		/* sign what the receiver gets: list headers, then the body */
		struct strbuf *tosign = strbuf_new((body ? blen : j->len) +
		    strbuf_len(head));

		strbuf_append(tosign, strbuf_str(head), strbuf_len(head));
		strbuf_append(tosign, body ? body : j->msg, body ? blen :
		    j->len);
		if ((n = dkim_sign_many(j->keys, j->nkeys,
		    strbuf_str(tosign), strbuf_len(tosign), now, j->bc, out,
		    err, errlen)) < (int)j->nkeys)
			log_warnx("karl: job %s: %s left out: %s", j->id,
			    n <= 0 ? "every DKIM signature" :
			    "a DKIM signature", err);
		strbuf_append(out, strbuf_str(tosign), strbuf_len(tosign));
		strbuf_free(tosign);
	} else {
		strbuf_append(out, strbuf_str(head), strbuf_len(head));
		strbuf_append(out, body ? body : j->msg, body ? blen : j->len);
	}
	strbuf_free(head);
	free(body);
	*msg = strbuf_detach(out, len);
	return 0;
}
