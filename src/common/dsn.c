/* SPDX-License-Identifier: MIT */
/*
 * dsn.c - the bounce parser: which addresses a bounce says failed, and
 * whether for good.
 *
 * The message is parsed once with GMime (line endings normalised to LF,
 * NULs blanked, at most DSN_INPUT_MAX bytes).  A walk over the MIME tree
 * collects: the first message/delivery-status part (RFC 3464; also a
 * text/plain part that carries the same fields), the human-readable text
 * of the bounce (text parts outside any returned message), and the
 * Message-ID of the returned message (message/rfc822 or rfc822-headers).
 * An RFC 3464 report with recipient groups decides alone; otherwise the
 * text is read for the non-standard formats of common MTAs (text_scan
 * and the comment above it).  Every copy into the result is bounded,
 * stripped of control characters and made valid UTF-8.  GMime is
 * initialised once (pthread_once); everything else is per call, so
 * dsn_parse is thread-safe.  See docs/dsn.md.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "dsn.h"
#include "strbuf.h"
#include "xalloc.h"

#define DSN_DEPTH_MAX	12		/* MIME nesting we follow */
#define DSN_PARTS_MAX	200		/* MIME parts we look at */
#define DSN_PART_MAX	(256 * 1024)	/* decoded bytes kept of one part */
#define DSN_SCAN_MAX	(512 * 1024)	/* bytes of bounce text scanned */
#define DSN_FIELD_MAX	1024		/* bytes of one unfolded field */

/* what the MIME walk gathers */
struct walk {
	struct dsn_result *out;
	struct strbuf *text;	/* readable text of the bounce itself */
	char	 author[DSN_FIELD_MAX];	/* From of the returned message */
	int	 nparts;
	int	 report_done;	/* a report named usable addresses */
	int	 report_seen;	/* a delivery-status part was there at all */
	char	 id_before[256];	/* returned message's id, seen first */
	char	 id_after[256];		/* ... seen after the report */
};

/* one recipient group of a delivery-status report */
struct group {
	char	 orig[DSN_FIELD_MAX];
	char	 final[DSN_FIELD_MAX];
	char	 action[DSN_FIELD_MAX];
	char	 status[DSN_FIELD_MAX];
	char	 diag[DSN_FIELD_MAX];
	char	 remote[DSN_FIELD_MAX];
};

static pthread_once_t dsn_once = PTHREAD_ONCE_INIT;

/* dsn_gmime_init - GMime must be initialised once per process; a
 * daemon that already did it only bumps GMime's counter. */
static void
dsn_gmime_init(void)
{
	g_mime_init();
}

/* ---- strings ---- */

/* utf8_len - length of the valid UTF-8 sequence at s (n bytes left), 0
 * if it is not one. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* put_clean - copy n bytes of src into dst (size bytes) as one line of
 * valid UTF-8: control characters become spaces, runs of spaces one,
 * invalid bytes '?', ends trimmed, cut on a character boundary. */
static void
put_clean(char *dst, size_t size, const char *src, size_t n)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, o = 0, l;
	int space = 1;

	if (size == 0)
		return;
	while (i < n && s[i] != '\0') {
		if (s[i] < 0x20 || s[i] == 0x7f || s[i] == ' ') {
			if (!space && o + 1 < size)
				dst[o++] = ' ';
			space = 1;
			i++;
			continue;
		}
		if ((l = utf8_len(s + i, n - i)) == 0) {
			if (o + 1 >= size)
				break;
			dst[o++] = '?';
			i++;
		} else {
			if (o + l >= size)
				break;
			memcpy(dst + o, s + i, l);
			o += l;
			i += l;
		}
		space = 0;
	}
	while (o > 0 && dst[o - 1] == ' ')
		o--;
	dst[o] = '\0';
}

/* skip_ws - first byte of s that is not a space or tab. */
static const char *
skip_ws(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* ci_find - first case-insensitive occurrence of needle in the n bytes of
 * hay, or NULL. */
static const char *
ci_find(const char *hay, size_t n, const char *needle)
{
	size_t m = strlen(needle), i;
	int lo, up;

	if (m == 0 || m > n)
		return NULL;
	lo = tolower((unsigned char)needle[0]);
	up = toupper((unsigned char)needle[0]);
	/* cheap first-byte test before the full comparison */
	for (i = 0; i + m <= n; i++)
		if ((hay[i] == lo || hay[i] == up) &&
		    strncasecmp(hay + i, needle, m) == 0)
			return hay + i;
	return NULL;
}

/* ---- status codes ---- */

/* enhanced_at - if s starts with an enhanced status code (RFC 3463:
 * class.subject.detail), copy it to code (16 bytes) and return its
 * length; else 0. */
static size_t
enhanced_at(const char *s, char *code)
{
	size_t i = 0, d, part;

	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return 0;
	if (s[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (d = 0; isdigit((unsigned char)s[i]) && d < 3; d++)
			i++;
		if (d == 0)
			return 0;
		if (part == 0) {
			if (s[i] != '.')
				return 0;
			i++;
		}
	}
	if (isdigit((unsigned char)s[i]) || (s[i] == '.' &&
	    isdigit((unsigned char)s[i + 1])))
		return 0;
	memcpy(code, s, i);
	code[i] = '\0';
	return i;
}

/* reply_at - if s starts with an SMTP reply code (4xx, 5xx) standing
 * alone, return its class digit; else 0. */
static int
reply_at(const char *s)
{
	if ((s[0] != '4' && s[0] != '5') || !isdigit((unsigned char)s[1]) ||
	    !isdigit((unsigned char)s[2]))
		return 0;
	if (s[1] > '5' || isdigit((unsigned char)s[3]) || s[3] == '.')
		return 0;
	return s[0];
}

/* status_from - find a status in the n bytes of s: the first enhanced
 * code, else the first reply code as "5.0.0" / "4.0.0".  Codes must
 * stand alone (not inside a longer number or word).  Returns 1 if found. */
static int
status_from(const char *s, size_t n, char code[16])
{
	size_t i;
	int cls = 0;

	code[0] = '\0';
	for (i = 0; i < n && s[i] != '\0'; i++) {
		/* "550-5.7.1" (a multi-line reply) is fine, "v2.5.1" not */
		if (i > 0 && (isalnum((unsigned char)s[i - 1]) ||
		    s[i - 1] == '.' || s[i - 1] == '_'))
			continue;
		if (n - i >= 5 && enhanced_at(s + i, code) > 0)
			return 1;
		if (cls == 0 && n - i >= 3)
			cls = reply_at(s + i);
	}
	if (cls == 0)
		return 0;
	snprintf(code, 16, "%c.0.0", cls);
	return 1;
}

/* ---- addresses ---- */

/* addr_clean - turn a candidate (maybe "rfc822; <a@b>", quoted, with
 * trailing punctuation) into a bare address in dst with the domain
 * lower-cased.  Returns 0 if it is a plausible address, -1 if not. */
static int
addr_clean(const char *src, size_t n, char dst[DSN_ADDR_MAX + 1])
{
	char buf[DSN_FIELD_MAX];
	char *s, *e, *at, *p;

	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, src, n);
	buf[n] = '\0';
	s = buf;
	/* an address type ("rfc822;") without an @ before the ';' */
	if ((p = strchr(s, ';')) != NULL && memchr(s, '@', (size_t)(p - s))
	    == NULL)
		s = p + 1;
	/* "Ann <ann@example.net>": the part in angle brackets */
	if ((p = strchr(s, '<')) != NULL && strchr(p, '>') != NULL &&
	    memchr(p, '@', (size_t)(strchr(p, '>') - p)) != NULL) {
		s = p + 1;
		*strchr(s, '>') = '\0';
	}
	while (*s == ' ' || *s == '\t' || *s == '<' || *s == '"' ||
	    *s == '\'' || *s == '(' || *s == '[')
		s++;
	if (strncasecmp(s, "mailto:", 7) == 0)
		s += 7;
	/* "ann@example.net (Ann)": the address ends at a blank */
	s[strcspn(s, " \t")] = '\0';
	e = s + strlen(s);
	while (e > s && strchr(" \t>\"'.,;:)]", e[-1]) != NULL)
		e--;
	*e = '\0';
	if ((at = strrchr(s, '@')) == NULL || at == s || at[1] == '\0')
		return -1;
	if ((size_t)(e - s) > DSN_ADDR_MAX || (size_t)(at - s) > 64)
		return -1;
	if (*s == '.' || at[-1] == '.')
		return -1;
	for (p = s; p < at; p++)
		if ((p[0] == '.' && p[1] == '.') || (unsigned char)*p <= ' ' ||
		    (unsigned char)*p >= 0x7f ||
		    strchr("<>()[],;:\\\"@", *p) != NULL)
			return -1;
	if (at[1] == '.' || e[-1] == '-' || strchr(at + 1, '.') == NULL)
		return -1;
	for (p = at + 1; p < e; p++) {
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' &&
		    *p != '_')
			return -1;
		if (*p == '.' && p[1] == '.')
			return -1;
		*p = (char)tolower((unsigned char)*p);
	}
	memcpy(dst, s, (size_t)(e - s) + 1);
	return 0;
}

/* rcpt_add - record a failed recipient, once per address: a second
 * mention replaces the first when it makes a soft failure hard or gives
 * a status where there was none.  Returns the entry to fill in (new or
 * replaced), NULL if nothing changed. */
static struct dsn_rcpt *
rcpt_add(struct dsn_result *out, const char *addr, enum dsn_kind kind,
    const char *status)
{
	struct dsn_rcpt *r;
	size_t i;

	for (i = 0; i < out->nrcpt; i++) {
		r = &out->rcpt[i];
		if (strcasecmp(r->addr, addr) != 0)
			continue;
		if (!(kind == DSN_HARD && r->kind == DSN_SOFT) &&
		    !(r->status[0] == '\0' && status[0] != '\0'))
			return NULL;
		r->kind = kind;
		put_clean(r->status, sizeof(r->status), status,
		    strlen(status));
		return r;
	}
	if (out->nrcpt >= DSN_RCPT_MAX)
		return NULL;
	r = &out->rcpt[out->nrcpt++];
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	put_clean(r->addr, sizeof(r->addr), addr, strlen(addr));
	put_clean(r->status, sizeof(r->status), status, strlen(status));
	return r;
}

/* ---- RFC 3464 ---- */

/* type_strip - the value after an RFC 3464 type prefix ("dns; x",
 * "smtp; 550 ..."); the value itself when there is none. */
static const char *
type_strip(const char *v)
{
	const char *p = strchr(v, ';');
	const char *q;

	if (p == NULL)
		return v;
	for (q = v; q < p; q++)
		if (!isalnum((unsigned char)*q) && *q != '-' && *q != '_' &&
		    *q != ' ')
			return v;
	return skip_ws(p + 1);
}

/* group_flush - turn a recipient group into a result entry; returns 1 if
 * the group named a usable address (failed or not), 0 if not. */
static int
group_flush(struct dsn_result *out, struct group *g)
{
	char addr[DSN_ADDR_MAX + 1], code[16], action[16];
	struct dsn_rcpt *r;
	enum dsn_kind kind;
	int used = 0;

	if (addr_clean(g->orig, strlen(g->orig), addr) < 0 &&
	    addr_clean(g->final, strlen(g->final), addr) < 0)
		goto done;
	used = 1;
	/* the first word of Action, lower case; synonyms MTAs use */
	put_clean(action, sizeof(action), g->action, strcspn(g->action,
	    " \t(;"));
	for (char *p = action; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	if (strcmp(action, "failure") == 0 || strcmp(action, "error") == 0)
		snprintf(action, sizeof(action), "failed");
	if (!status_from(g->status, strlen(g->status), code))
		status_from(type_strip(g->diag), strlen(type_strip(g->diag)),
		    code);
	if (strcmp(action, "delivered") == 0 || strcmp(action, "relayed") ==
	    0 || strcmp(action, "expanded") == 0 || code[0] == '2')
		goto done;
	if (strcmp(action, "delayed") == 0)
		kind = DSN_SOFT;
	else
		kind = code[0] == '4' ? DSN_SOFT : DSN_HARD;
	if ((r = rcpt_add(out, addr, kind, code)) != NULL) {
		put_clean(r->action, sizeof(r->action), action,
		    strlen(action));
		put_clean(r->diagnostic, sizeof(r->diagnostic),
		    type_strip(g->diag), strlen(type_strip(g->diag)));
		put_clean(r->remote_mta, sizeof(r->remote_mta),
		    type_strip(g->remote), strlen(type_strip(g->remote)));
	}
done:
	memset(g, 0, sizeof(*g));
	return used;
}

/* field_set - store one unfolded field of a report; returns what
 * group_flush returned if the field started a new group, else 0. */
static int
field_set(struct dsn_result *out, struct group *g, const char *name,
    size_t nlen, const char *val)
{
	static const struct {
		const char *name;
		size_t	 off;
	} map[] = {
		{ "original-recipient", offsetof(struct group, orig) },
		{ "final-recipient", offsetof(struct group, final) },
		{ "action", offsetof(struct group, action) },
		{ "status", offsetof(struct group, status) },
		{ "diagnostic-code", offsetof(struct group, diag) },
		{ "remote-mta", offsetof(struct group, remote) },
	};
	char *dst;
	size_t i;
	int used = 0;

	if (nlen == 13 && strncasecmp(name, "reporting-mta", 13) == 0) {
		put_clean(out->reporting_mta, sizeof(out->reporting_mta),
		    type_strip(val), strlen(type_strip(val)));
		return 0;
	}
	if (nlen == 20 && strncasecmp(name, "original-envelope-id", 20) == 0) {
		put_clean(out->envelope_id, sizeof(out->envelope_id), val,
		    strlen(val));
		return 0;
	}
	for (i = 0; i < NELEM(map); i++) {
		if (strlen(map[i].name) != nlen ||
		    strncasecmp(name, map[i].name, nlen) != 0)
			continue;
		dst = (char *)g + map[i].off;
		/* a repeated recipient field starts the next group (some
		 * MTAs leave out the blank line between groups) */
		if (i < 2 && dst[0] != '\0')
			used = group_flush(out, g);
		if (dst[0] == '\0')
			put_clean(dst, DSN_FIELD_MAX, val, strlen(val));
		return used;
	}
	return 0;
}

/* report_parse - read the fields of a delivery-status body (n bytes, LF
 * lines); returns the number of recipient groups with a usable address
 * (0: the report says nothing we can use, so the text is read). */
static int
report_parse(struct dsn_result *out, const char *s, size_t n)
{
	struct group *g = xcalloc(1, sizeof(*g));
	char *field = xmalloc(DSN_FIELD_MAX);
	size_t flen = 0, i = 0, eol, len, nlen;
	int groups = 0;
	const char *colon;

	field[0] = '\0';
	for (;;) {
		eol = i;
		while (eol < n && s[eol] != '\n')
			eol++;
		len = eol - i;
		/* trailing blanks dropped: a line of blanks separates groups */
		while (len > 0 && (s[i + len - 1] == '\r' || s[i + len - 1] ==
		    ' ' || s[i + len - 1] == '\t'))
			len--;
		if (i < n && len > 0 && (s[i] == ' ' || s[i] == '\t') &&
		    flen > 0) {
			/* folded: continue the field, bounded */
			if (flen + 1 + len < DSN_FIELD_MAX) {
				field[flen++] = ' ';
				memcpy(field + flen, s + i, len);
				flen += len;
				field[flen] = '\0';
			}
		} else {
			if (flen > 0 && (colon = memchr(field, ':', flen)) !=
			    NULL) {
				nlen = (size_t)(colon - field);
				while (nlen > 0 && field[nlen - 1] == ' ')
					nlen--;
				groups += field_set(out, g, field, nlen,
				    skip_ws(colon + 1));
			}
			flen = 0;
			field[0] = '\0';
			if (i >= n)
				break;
			if (len == 0)
				groups += group_flush(out, g);
			else if (len < DSN_FIELD_MAX) {
				memcpy(field, s + i, len);
				flen = len;
				field[flen] = '\0';
			}
		}
		if (eol >= n)
			i = n;
		else
			i = eol + 1;
	}
	groups += group_flush(out, g);
	free(g);
	free(field);
	return groups;
}

/* looks_like_report - a text part that carries delivery-status fields
 * (some MTAs label the report text/plain). */
static int
looks_like_report(const char *s, size_t n)
{
	const char *p;

	if ((p = ci_find(s, n, "final-recipient:")) == NULL &&
	    (p = ci_find(s, n, "original-recipient:")) == NULL)
		return 0;
	if (p != s && p[-1] != '\n')
		return 0;
	return ci_find(s, n, "\naction:") != NULL ||
	    ci_find(s, n, "\nstatus:") != NULL;
}

/* ---- the MIME walk ---- */

/* part_bytes - the decoded content of a leaf part, at most DSN_PART_MAX
 * bytes, NULs blanked; returns allocated, caller frees. */
static struct strbuf *
part_bytes(GMimePart *part)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *st;
	GByteArray *arr;
	struct strbuf *sb = strbuf_new(256);
	size_t i, n;

	if (w == NULL)
		return sb;
	st = g_mime_stream_mem_new();
	if (g_mime_data_wrapper_write_to_stream(w, st) >= 0) {
		arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(st));
		n = arr->len < DSN_PART_MAX ? arr->len : DSN_PART_MAX;
		strbuf_append(sb, arr->data, n);
		for (i = 0; i < sb->len; i++)
			if (sb->buf[i] == '\0')
				sb->buf[i] = ' ';
	}
	g_object_unref(st);
	return sb;
}

/* part_text - the content of a text part converted to UTF-8 from its
 * charset (GMime does that; an unknown charset gives the bytes as they
 * are), at most DSN_PART_MAX bytes, NULs blanked; returns allocated,
 * caller frees. */
static struct strbuf *
part_text(GMimePart *part)
{
	struct strbuf *sb;
	char *t;
	size_t i, n;

	if (!GMIME_IS_TEXT_PART(part) || g_mime_text_part_get_charset(
	    GMIME_TEXT_PART(part)) == NULL ||
	    (t = g_mime_text_part_get_text(GMIME_TEXT_PART(part))) == NULL)
		return part_bytes(part);
	n = strlen(t);
	sb = strbuf_new(n < DSN_PART_MAX ? n + 1 : DSN_PART_MAX + 1);
	strbuf_append(sb, t, n < DSN_PART_MAX ? n : DSN_PART_MAX);
	g_free(t);
	for (i = 0; i < sb->len; i++)
		if (sb->buf[i] == '\0')
			sb->buf[i] = ' ';
	return sb;
}

/* id_clean - a Message-ID without <> and blanks, into dst (256). */
static void
id_clean(char dst[256], const char *v)
{
	const char *s = skip_ws(v), *e;

	if (*s == '<')
		s++;
	e = s + strcspn(s, "> \t\r\n");
	put_clean(dst, 256, s, (size_t)(e - s));
}

/* headers_msgid - the Message-ID field of a header block (n bytes). */
static void
headers_msgid(const char *s, size_t n, char dst[256])
{
	const char *p = s, *e = s + n;

	while (p < e) {
		const char *eol = memchr(p, '\n', (size_t)(e - p));
		size_t len = eol ? (size_t)(eol - p) : (size_t)(e - p);

		if (len == 0 || (len == 1 && *p == '\r'))
			break;
		if (len >= 11 && strncasecmp(p, "message-id:", 11) == 0) {
			char tmp[512];
			const char *v = skip_ws(p + 11);
			size_t vl = len - (size_t)(v - p);

			/* the id may be folded onto the next line */
			if (vl == 0 && eol != NULL && eol + 1 < e) {
				v = skip_ws(eol + 1);
				eol = memchr(v, '\n', (size_t)(e - v));
				vl = eol ? (size_t)(eol - v) : (size_t)(e - v);
			}
			if (vl >= sizeof(tmp))
				vl = sizeof(tmp) - 1;
			memcpy(tmp, v, vl);
			tmp[vl] = '\0';
			id_clean(dst, tmp);
			return;
		}
		p = eol ? eol + 1 : e;
	}
}

/* html_text - append the text of html (tags dropped, a few entities
 * decoded, block ends as line breaks) to sb. */
static void
html_text(struct strbuf *sb, const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		if (s[i] == '<') {
			size_t j = i + 1;

			while (j < n && s[j] != '>')
				j++;
			if (j - i >= 3 && (strncasecmp(s + i + 1, "br", 2) ==
			    0 || strncasecmp(s + i + 1, "/p", 2) == 0 ||
			    strncasecmp(s + i + 1, "/div", 4) == 0 ||
			    strncasecmp(s + i + 1, "/tr", 3) == 0 ||
			    strncasecmp(s + i + 1, "p", 1) == 0))
				strbuf_putc(sb, '\n');
			else
				strbuf_putc(sb, ' ');
			i = j + 1;
		} else if (s[i] == '&') {
			if (n - i >= 4 && strncasecmp(s + i, "&lt;", 4) == 0)
				strbuf_putc(sb, '<'), i += 4;
			else if (n - i >= 4 && strncasecmp(s + i, "&gt;", 4) ==
			    0)
				strbuf_putc(sb, '>'), i += 4;
			else if (n - i >= 6 && strncasecmp(s + i, "&nbsp;", 6)
			    == 0)
				strbuf_putc(sb, ' '), i += 6;
			else if (n - i >= 5 && strncasecmp(s + i, "&amp;", 5)
			    == 0)
				strbuf_putc(sb, '&'), i += 5;
			else
				strbuf_putc(sb, s[i++]);
		} else
			strbuf_putc(sb, s[i++]);
	}
}

/* text_add - append one text part to the scan text, bounded. */
static void
text_add(struct strbuf *sb, const char *s, size_t n, int html)
{
	if (sb->len >= DSN_SCAN_MAX)
		return;
	if (n > DSN_SCAN_MAX - sb->len)
		n = DSN_SCAN_MAX - sb->len;
	if (html)
		html_text(sb, s, n);
	else
		strbuf_append(sb, s, n);
	strbuf_puts(sb, "\n\n");
}

static void walk_object(struct walk *, GMimeObject *, int, int);

/* walk_message - a message/rfc822 part: the returned message (its id),
 * or a bounce forwarded as an attachment (its parts are walked). */
static void
walk_message(struct walk *w, GMimeMessage *m, int depth, int inner)
{
	const char *id = g_mime_message_get_message_id(m);
	char *dst = w->report_seen ? w->id_after : w->id_before;

	const char *from = g_mime_object_get_header(GMIME_OBJECT(m), "From");

	if (id != NULL && dst[0] == '\0')
		id_clean(dst, id);
	if (from != NULL && w->author[0] == '\0')
		put_clean(w->author, sizeof(w->author), from, strlen(from));
	if (g_mime_message_get_mime_part(m) != NULL)
		walk_object(w, g_mime_message_get_mime_part(m), depth + 1,
		    inner + 1);
}

/* walk_leaf - one leaf part. */
static void
walk_leaf(struct walk *w, GMimePart *part, int inner)
{
	GMimeContentType *ct = g_mime_object_get_content_type(
	    GMIME_OBJECT(part));
	const char *type = ct ? g_mime_content_type_get_media_type(ct) : NULL;
	const char *sub = ct ? g_mime_content_type_get_media_subtype(ct) :
	    NULL;
	struct strbuf *sb;
	char *dst;
	/* a report inside an attached message is believed only when the
	 * bounce has no text of its own before it (a report forwarded as
	 * an attachment); otherwise it is part of the returned message */
	int report_ok = !w->report_done && (inner == 0 || w->text->len == 0);

	if (type == NULL || sub == NULL)
		type = "text", sub = "plain";
	if (strcasecmp(sub, "delivery-status") == 0 ||
	    strcasecmp(sub, "global-delivery-status") == 0) {
		if (!report_ok)
			return;
		sb = part_bytes(part);
		w->report_seen = 1;
		if (report_parse(w->out, sb->buf, sb->len) > 0)
			w->report_done = 1;
		strbuf_free(sb);
		return;
	}
	if (strcasecmp(sub, "rfc822-headers") == 0 ||
	    strcasecmp(sub, "global-headers") == 0) {
		sb = part_bytes(part);
		dst = w->report_seen ? w->id_after : w->id_before;
		if (dst[0] == '\0')
			headers_msgid(sb->buf, sb->len, dst);
		strbuf_free(sb);
		return;
	}
	if (strcasecmp(type, "text") != 0 || (strcasecmp(sub, "plain") != 0 &&
	    strcasecmp(sub, "html") != 0))
		return;
	if (g_mime_part_is_attachment(part) && inner == 0 &&
	    w->text->len > 0)
		return;
	sb = part_text(part);
	if (report_ok && looks_like_report(sb->buf, sb->len)) {
		w->report_seen = 1;
		if (report_parse(w->out, sb->buf, sb->len) > 0)
			w->report_done = 1;
	}
	/* the text of a returned message is the member's, not the MTA's */
	if (inner == 0)
		text_add(w->text, sb->buf, sb->len, strcasecmp(sub, "html") ==
		    0);
	strbuf_free(sb);
}

/* walk_object - depth-first over the MIME tree, bounded. */
static void
walk_object(struct walk *w, GMimeObject *obj, int depth, int inner)
{
	int i, n;

	if (obj == NULL || depth > DSN_DEPTH_MAX ||
	    ++w->nparts > DSN_PARTS_MAX)
		return;
	if (GMIME_IS_MULTIPART(obj)) {
		n = g_mime_multipart_get_count(GMIME_MULTIPART(obj));
		for (i = 0; i < n; i++)
			walk_object(w, g_mime_multipart_get_part(
			    GMIME_MULTIPART(obj), i), depth + 1, inner);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *m = g_mime_message_part_get_message(
		    GMIME_MESSAGE_PART(obj));

		if (m != NULL)
			walk_message(w, m, depth, inner);
	} else if (GMIME_IS_PART(obj))
		walk_leaf(w, GMIME_PART(obj), inner);
}

/* ---- text of the bounce ---- */

/* body_msgid - the Message-ID of a returned message quoted in the text:
 * a "Message-ID:" line, maybe indented or quoted with '>'. */
static void
body_msgid(struct dsn_result *out, const struct strbuf *text)
{
	const char *s = text->buf, *e = s + text->len, *p, *v;

	for (p = s; p < e; p++) {
		if (p != s && p[-1] != '\n')
			continue;
		v = p;
		while (v < e && (*v == ' ' || *v == '\t' || *v == '>'))
			v++;
		if (e - v > 11 && strncasecmp(v, "message-id:", 11) == 0) {
			char tmp[512];
			size_t vl;

			v = skip_ws(v + 11);
			vl = strcspn(v, "\n");
			if (vl >= sizeof(tmp))
				vl = sizeof(tmp) - 1;
			memcpy(tmp, v, vl);
			tmp[vl] = '\0';
			id_clean(out->original_message_id, tmp);
			if (out->original_message_id[0] != '\0')
				return;
		}
	}
}

/*
 * The non-standard formats.  Rather than one detector per MTA, the text
 * of a bounce is read as most MTAs write it: a few sentences saying that
 * delivery failed, the failed addresses (alone on a line, "<addr>:",
 * "addr: 550 ...", "Failed Recipient: addr", "... to addr"), a reason,
 * and then a copy of the message, introduced by a marker line ("--- Below
 * this line is a copy of the message.") or by its raw header lines.  So:
 * only a message that looks like a bounce (sender, subject or wording) is
 * read; reading stops at the copy; lines that quote the original
 * headers (To:, Subject:, ...) and contact lines are passed over; the
 * addresses of the bounce's own headers, postmasters and mailer daemons
 * are not recipients; the author of the returned message only counts
 * when nobody else is named.  Permanence comes from the reply or
 * enhanced code next to the address, else from warning wording.
 */

/* phrases that end the bounce's own text: a copy of the message follows */
static const char *const text_end[] = {
	"below this line is a copy", "copy of the message",
	"copy of the original message", "original message follows",
	"original message as received", "original message attached",
	"message follows", "returned mail follows", "message header follow",
	"message headers follow", "header of the original message",
	"headers of the original message", "message text follows",
	"message body follows", "unsent message below",
	"----- original message", "summary of the undelivered message",
	"your message reads", "first 50 lines", "included is a copy",
	"header and top", "here is a copy", "body suppressed",
	"transcript of session", "session transcript", "old message:",
	"may be of help", "--------error detail",
};

/* header lines at the left margin that start a copy of the message */
static const char *const text_copy_hdr[] = {
	"received:", "return-path:", "message-id:", "delivered-to:",
	"dkim-signature:", "mime-version:", "path:", "references:",
	"in-reply-to:", "content-type: message/", "content-type: text/rfc822",
	"x-",
};

/* line openings that quote the original message's headers */
static const char *const text_quoted_hdr[] = {
	"to:", "cc:", "bcc:", "from:", "sender:", "reply-to:", "date:",
	"sent:", "subject:", "message-id:", "de:", "para:", "return-path:",
	"received:", "in-reply-to:", "references:",
};

/* wording of a bounce's text (checked in its first part) */
static const char *const text_failed[] = {
	"could not be delivered", "not be delivered", "was not delivered",
	"not delivered to", "undeliverable", "unable to deliver",
	"could not deliver", "couldn't deliver", "not able to deliver",
	"wasn't able to deliver", "delivery failed", "delivery failure",
	"delivery to the following", "did not reach", "not yet been delivered",
	"permanent error", "permanent fatal", "failed permanently",
	"following address", "following recipient", "no such user",
	"user unknown", "delivery problem", "non-delivery", "returned mail",
	"has been postponed", "error-for:", "qmail-send", "mail delivery",
	"failed address", "failed recipient", "invalid final delivery",
	"undeliverable address", "delivery status notification",
	"not listed in", "cannot be delivered", "can not be delivered",
	"pas pu etre delivre", "non remis", "couldn't be delivered",
	"delivery has failed", "wasn't delivered", "failed to deliver",
};

/* the same in a subject */
static const char *const subject_failed[] = {
	"undeliver", "delivery fail", "delivery status", "failure notice",
	"returned mail", "mail delivery", "not delivered", "non-delivery",
	"delivery problem", "delivery failure", "failed mail",
	"mail error", "error during delivery", "could not be delivered",
	"delivery warning", "message delayed", "has not yet been delivered",
	"rejected", "non remis", "mail failed", "mail system error",
	"failure delivery", "returned to sender", "processing error",
	"user unknown",
};

/* wording of a warning: delivery is still being tried */
static const char *const text_warning[] = {
	"not yet been delivered", "has been delayed", "will continue to",
	"will be retried", "warning message only", "just a warning",
	"has been postponed", "advisory-only", "attempts will continue",
	"still trying", "will keep trying", "no action is required",
	"delivery is delayed", "will retry", "do not need to resend",
};

/* labels that name the failed address outright; when a bounce has
 * them, loose mentions of other addresses are not believed */
static const char *const text_label[] = {
	"was addressed,", "intended recipient:", "failed recipient:",
	"undeliverable address:", "error-for:",
	"invalid final delivery userid:",
	"unknown user:", "failed address:", "recipient address:",
};

/* line_has - one of the phrases occurs in the n bytes of s. */
static int
line_has(const char *s, size_t n, const char *const *list, size_t nlist)
{
	size_t i;

	if (n < 3)	/* no phrase is shorter: blank lines are cheap */
		return 0;
	for (i = 0; i < nlist; i++)
		if (ci_find(s, n, list[i]) != NULL)
			return 1;
	return 0;
}

/* line_opens - s (n bytes) starts with one of the words. */
static int
line_opens(const char *s, size_t n, const char *const *list, size_t nlist)
{
	size_t i, l;

	if (n < 2)
		return 0;
	for (i = 0; i < nlist; i++) {
		l = strlen(list[i]);
		if (n >= l && strncasecmp(s, list[i], l) == 0)
			return 1;
	}
	return 0;
}

#define ADDR_DELIM	" \t\r\n<>()[]\"',;:=*|{}\\/`"
#define NOT_RCPT_MAX	16

/* the addresses that are never a failed recipient */
struct not_rcpt {
	char	 addr[NOT_RCPT_MAX][DSN_ADDR_MAX + 1];
	size_t	 n;
};

/* line_addrs - call fn for each plausible address in the n bytes of s;
 * stops early when fn returns nonzero. */
static void
line_addrs(const char *s, size_t n, int (*fn)(const char *, void *),
    void *arg)
{
	char addr[DSN_ADDR_MAX + 1];
	size_t i = 0, j;

	while (i < n) {
		while (i < n && strchr(ADDR_DELIM, s[i]) != NULL)
			i++;
		j = i;
		while (j < n && strchr(ADDR_DELIM, s[j]) == NULL)
			j++;
		if (j > i && memchr(s + i, '@', j - i) != NULL &&
		    addr_clean(s + i, j - i, addr) == 0 && fn(addr, arg))
			return;
		i = j;
	}
}

/* not_rcpt_add - line_addrs callback: remember an address. */
static int
not_rcpt_add(const char *addr, void *arg)
{
	struct not_rcpt *nr = arg;

	if (nr->n < NOT_RCPT_MAX)
		snprintf(nr->addr[nr->n++], DSN_ADDR_MAX + 1, "%s", addr);
	return 0;
}

/* not_rcpt_has - addr is one of nr's. */
static int
not_rcpt_has(const struct not_rcpt *nr, const char *addr)
{
	size_t i;

	for (i = 0; i < nr->n; i++)
		if (strcasecmp(nr->addr[i], addr) == 0)
			return 1;
	return 0;
}

/* header_addrs - the addresses of one header of m into nr. */
static void
header_addrs(GMimeObject *obj, const char *name, struct not_rcpt *nr)
{
	const char *v = g_mime_object_get_header(obj, name);

	if (v != NULL)
		line_addrs(v, strlen(v), not_rcpt_add, nr);
}

/* service_addr - a role address that sends bounces, not a recipient. */
static int
service_addr(const char *addr)
{
	return strncasecmp(addr, "postmaster@", 11) == 0 ||
	    strncasecmp(addr, "mailer-daemon@", 14) == 0 ||
	    strncasecmp(addr, "mailer_daemon@", 14) == 0;
}

/* one line of the text being read */
struct line {
	const char *s;
	size_t	 n;
};

/* what the text reader keeps */
struct reader {
	struct dsn_result *out;
	const struct not_rcpt *never;	/* headers of the bounce */
	const char *text;
	size_t	 end;		/* bytes of text that are the bounce's own */
	size_t	 pos;		/* the current line */
	int	 warning;	/* wording says delivery is still tried */
};

/* line_at - the line of text at off (without its LF) and the next. */
static size_t
line_at(const char *text, size_t size, size_t off, struct line *l)
{
	const char *eol = memchr(text + off, '\n', size - off);

	l->s = text + off;
	l->n = eol ? (size_t)(eol - l->s) : size - off;
	return eol ? (size_t)(eol - text) + 1 : size;
}

/* names_other - the line opens with an address other than addr (the
 * next recipient of a list). */
static int
names_other(const struct line *l, const char *addr)
{
	char first[DSN_ADDR_MAX + 1];
	size_t i = 0, j;

	while (i < l->n && strchr(" \t<>", l->s[i]) != NULL)
		i++;
	for (j = i; j < l->n && strchr(ADDR_DELIM, l->s[j]) == NULL; j++)
		;
	return j > i && addr_clean(l->s + i, j - i, first) == 0 &&
	    strcasecmp(first, addr) != 0;
}

/* rcpt_context - the status and diagnostic for an address found at
 * line r->pos: that line's rest and the next few, to a blank line or a
 * line that opens with someone else. */
static void
rcpt_context(struct reader *r, const char *addr, char code[16],
    char *diag, size_t dsize)
{
	char buf[DSN_TEXT_MAX * 2];
	size_t off = r->pos, o = 0, lines = 0;
	struct line l;
	const char *p;

	code[0] = '\0';
	while (off < r->end && lines < 6) {
		off = line_at(r->text, r->end, off, &l);
		if (lines > 0 && (l.n == 0 || names_other(&l, addr)))
			break;
		p = l.s;
		if (lines == 0 && (p = ci_find(l.s, l.n, addr)) != NULL)
			p += strlen(addr);
		else
			p = l.s;
		if (code[0] == '\0')
			status_from(p, l.n - (size_t)(p - l.s), code);
		/* "552 Quota violation for addr": the code came first */
		if (code[0] == '\0' && lines == 0)
			status_from(l.s, l.n, code);
		while (p < l.s + l.n && strchr(" \t>:.,;)\"'-", *p) != NULL)
			p++;
		if (o + 1 < sizeof(buf) && p < l.s + l.n) {
			size_t k = (size_t)(l.s + l.n - p);

			if (k > sizeof(buf) - o - 2)
				k = sizeof(buf) - o - 2;
			memcpy(buf + o, p, k);
			o += k;
			buf[o++] = ' ';
		}
		lines++;
	}
	put_clean(diag, dsize, buf, o);
}

/* reader_add - line_addrs callback: an address in the bounce's text. */
static int
reader_add(const char *addr, void *arg)
{
	struct reader *r = arg;
	struct dsn_rcpt *e;
	char code[16], diag[DSN_TEXT_MAX + 1];
	enum dsn_kind kind;

	if (service_addr(addr) || not_rcpt_has(r->never, addr))
		return 0;
	rcpt_context(r, addr, code, diag, sizeof(diag));
	if (code[0] == '4' || (code[0] == '\0' && r->warning))
		kind = DSN_SOFT;
	else
		kind = DSN_HARD;
	if ((e = rcpt_add(r->out, addr, kind, code)) != NULL) {
		snprintf(e->action, sizeof(e->action), "%s",
		    kind == DSN_SOFT ? "delayed" : "failed");
		put_clean(e->diagnostic, sizeof(e->diagnostic), diag,
		    strlen(diag));
	}
	return 0;
}

/* text_end_at - where the bounce's own text ends: at a marker line or
 * at the raw headers of a copy of the message. */
static size_t
text_end_at(const char *text, size_t size)
{
	size_t off = 0, next;
	struct line l;

	while (off < size) {
		next = line_at(text, size, off, &l);
		if (line_has(l.s, l.n, text_end, NELEM(text_end)) ||
		    line_opens(l.s, l.n, text_copy_hdr, NELEM(text_copy_hdr)))
			return off;
		off = next;
	}
	return size;
}

/* quoted_header - the line quotes a header of the original message. */
static int
quoted_header(const struct line *l)
{
	const char *p = l->s, *e = l->s + l->n;

	while (p < e && (*p == ' ' || *p == '\t' || *p == '>'))
		p++;
	return line_opens(p, (size_t)(e - p), text_quoted_hdr,
	    NELEM(text_quoted_hdr));
}

/* reader_add_first - line_addrs callback: the first address only. */
static int
reader_add_first(const char *addr, void *arg)
{
	reader_add(addr, arg);
	return 1;
}

/* reader_labels - the addresses right after a label (text_label). */
static void
reader_labels(struct reader *r)
{
	const char *p;
	struct line l;
	size_t next, i;

	for (r->pos = 0; r->pos < r->end; r->pos = next) {
		next = line_at(r->text, r->end, r->pos, &l);
		for (i = 0; i < NELEM(text_label); i++) {
			if ((p = ci_find(l.s, l.n, text_label[i])) == NULL)
				continue;
			p += strlen(text_label[i]);
			line_addrs(p, (size_t)(l.s + l.n - p), reader_add_first,
			    r);
			break;
		}
	}
}

/* failed_header_add - line_addrs callback: an address of the
 * X-Failed-Recipients header, read in the context of its first mention
 * in the text (none if the text does not name it). */
static int
failed_header_add(const char *addr, void *arg)
{
	struct reader *r = arg;
	const char *p = ci_find(r->text, r->end, addr);

	r->pos = r->end;
	if (p != NULL) {
		r->pos = (size_t)(p - r->text);
		while (r->pos > 0 && r->text[r->pos - 1] != '\n')
			r->pos--;
	}
	reader_add(addr, r);
	return 0;
}

/* contact_line - the line says whom to contact ("please contact
 * help@..."): the word, not an address that contains it. */
static int
contact_line(const struct line *l)
{
	const char *p = l->s, *e = l->s + l->n, *a, *b;

	while ((p = ci_find(p, (size_t)(e - p), "contact")) != NULL) {
		for (a = p; a > l->s && strchr(ADDR_DELIM, a[-1]) == NULL; a--)
			;
		for (b = p; b < e && strchr(ADDR_DELIM, *b) == NULL; b++)
			;
		if (memchr(a, '@', (size_t)(b - a)) == NULL)
			return 1;
		p = b;
	}
	return 0;
}

/* reader_pass - read every line of the bounce's text; quoted header
 * lines only when quoted is set. */
static void
reader_pass(struct reader *r, int quoted)
{
	struct line l;
	size_t next;

	for (r->pos = 0; r->pos < r->end; r->pos = next) {
		next = line_at(r->text, r->end, r->pos, &l);
		if (quoted_header(&l) != quoted)
			continue;
		if (!quoted && contact_line(&l))
			continue;
		line_addrs(l.s, l.n, reader_add, r);
	}
}

/* aol_names - AOL names its users without the domain: "screenname"
 * alone on a line under "following recipients", up to a blank line. */
static void
aol_names(struct reader *r, const char *from_domain)
{
	static const char name_chars[] = "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
	char addr[DSN_ADDR_MAX + 1];
	const char *p;
	struct line l;
	size_t off, next, span, found = 0;

	if (strcasecmp(from_domain, "aol.com") != 0 ||
	    (p = ci_find(r->text, r->end, "following recipients")) == NULL)
		return;
	off = line_at(r->text, r->end, (size_t)(p - r->text), &l);
	for (; off < r->end; off = next) {
		next = line_at(r->text, r->end, off, &l);
		while (l.n > 0 && (*l.s == ' ' || *l.s == '\t'))
			l.s++, l.n--;
		while (l.n > 0 && (l.s[l.n - 1] == ' ' || l.s[l.n - 1] ==
		    '\t'))
			l.n--;
		if (l.n == 0) {
			if (found > 0)
				break;
			continue;
		}
		for (span = 0; span < l.n && l.s[span] != '\0' &&
		    strchr(name_chars, l.s[span]) != NULL; span++)
			;
		if (span < l.n || l.n > 64)
			break;
		snprintf(addr, sizeof(addr), "%.*s@aol.com", (int)l.n, l.s);
		r->pos = off;
		reader_add(addr, r);
		found++;
	}
}

/* drop_author - the author of the returned message is named in most
 * bounces ("your message from ..."); drop them unless alone. */
static void
drop_author(struct dsn_result *out, const struct not_rcpt *author)
{
	size_t i, o = 0, nauthor = 0;

	for (i = 0; i < out->nrcpt; i++)
		nauthor += not_rcpt_has(author, out->rcpt[i].addr);
	if (nauthor == 0 || nauthor == out->nrcpt)
		return;
	for (i = 0; i < out->nrcpt; i++)
		if (!not_rcpt_has(author, out->rcpt[i].addr))
			out->rcpt[o++] = out->rcpt[i];
	out->nrcpt = o;
}

/* looks_like_bounce - the sender, subject or wording says so. */
static int
looks_like_bounce(GMimeMessage *m, const struct strbuf *text)
{
	const char *from = g_mime_object_get_header(GMIME_OBJECT(m), "From");
	const char *subj = g_mime_object_get_header(GMIME_OBJECT(m),
	    "Subject");
	static const char *const senders[] = {
		"mailer-daemon", "mailer_daemon", "postmaster",
		"mail delivery", "delivery subsystem", "mdaemon",
		"mail administrator", "system administrator",
	};
	static const char *const replies[] = {
		"auto reply", "autoreply", "auto-reply", "automatic reply",
		"out of office", "out of the office", "vacation",
		"autoresponse", "auto response",
	};
	size_t n = text->len < 4096 ? text->len : 4096;

	/* an auto-reply is no bounce, whatever its wording: its subject
	 * starts so ("Undeliverable: Vacation plans" is a bounce).  (Not
	 * "Auto-Submitted: auto-replied": Dovecot's rejects, MailEnable and
	 * mail.ru send real bounces with it.) */
	if (g_mime_object_get_header(GMIME_OBJECT(m), "X-Autoreply") !=
	    NULL || g_mime_object_get_header(GMIME_OBJECT(m),
	    "X-Autorespond") != NULL || (subj != NULL && line_opens(
	    skip_ws(subj), strlen(skip_ws(subj)), replies, NELEM(replies))))
		return 0;
	if (from != NULL && (line_has(from, strlen(from), senders,
	    NELEM(senders)) || strstr(from, "<>") != NULL))
		return 1;
	if (subj != NULL && line_has(subj, strlen(subj), subject_failed,
	    NELEM(subject_failed)))
		return 1;
	return line_has(text->buf, n, text_failed, NELEM(text_failed));
}

/* text_scan - the non-standard formats (see above). */
static void
text_scan(struct dsn_result *out, GMimeMessage *m, struct strbuf *text,
    const struct not_rcpt *author)
{
	static const char *const own[] = {
		"From", "To", "Cc", "Sender", "Reply-To", "Return-Path",
		"Errors-To",
	};
	struct not_rcpt never;
	struct reader r;
	const char *from, *at, *failed;
	char domain[256] = "";
	size_t i;

	if (text->len == 0 || !looks_like_bounce(m, text))
		return;
	memset(&never, 0, sizeof(never));
	for (i = 0; i < NELEM(own); i++)
		header_addrs(GMIME_OBJECT(m), own[i], &never);
	memset(&r, 0, sizeof(r));
	r.out = out;
	r.never = &never;
	r.text = text->buf;
	r.end = text_end_at(text->buf, text->len);
	r.warning = line_has(text->buf, r.end, text_warning,
	    NELEM(text_warning));
	if ((from = g_mime_object_get_header(GMIME_OBJECT(m), "From")) !=
	    NULL && (at = strrchr(from, '@')) != NULL) {
		put_clean(domain, sizeof(domain), at + 1, strcspn(at + 1,
		    "> \t\"),;"));
		aol_names(&r, domain);
	}
	/* Exim and Gmail list the failed addresses in a header */
	if (out->nrcpt == 0 && (failed = g_mime_object_get_header(
	    GMIME_OBJECT(m), "X-Failed-Recipients")) != NULL)
		line_addrs(failed, strlen(failed), failed_header_add, &r);
	if (out->nrcpt == 0)
		reader_labels(&r);
	if (out->nrcpt == 0)
		reader_pass(&r, 0);
	/* only the quoted headers name someone: "To:" is the recipient */
	if (out->nrcpt == 0)
		reader_pass(&r, 1);
	drop_author(out, author);
}

/* normalise - the input with LF line ends and no NULs, at most
 * DSN_INPUT_MAX bytes; returns allocated, caller frees. */
static char *
normalise(const char *msg, size_t len, size_t *outlen)
{
	char *buf;
	size_t i, o = 0;

	if (len > DSN_INPUT_MAX)
		len = DSN_INPUT_MAX;
	buf = xmalloc(len + 1);
	for (i = 0; i < len; i++) {
		if (msg[i] == '\r') {
			buf[o++] = '\n';
			if (i + 1 < len && msg[i + 1] == '\n')
				i++;
		} else
			buf[o++] = msg[i] == '\0' ? ' ' : msg[i];
	}
	buf[o] = '\0';
	*outlen = o;
	return buf;
}

/* dsn_parse - see dsn.h. */
size_t
dsn_parse(const char *msg, size_t len, struct dsn_result *out)
{
	struct walk w;
	GMimeStream *st;
	GMimeParser *p;
	GMimeMessage *m;
	char *buf;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (msg == NULL || len == 0)
		return 0;
	pthread_once(&dsn_once, dsn_gmime_init);
	buf = normalise(msg, len, &n);
	st = g_mime_stream_mem_new_with_buffer(buf, n);
	p = g_mime_parser_new_with_stream(st);
	m = g_mime_parser_construct_message(p, NULL);
	memset(&w, 0, sizeof(w));
	w.out = out;
	w.text = strbuf_new(4096);
	if (m != NULL) {
		walk_object(&w, g_mime_message_get_mime_part(m), 0, 0);
		out->is_dsn = w.report_done;
		if (!w.report_done) {
			struct not_rcpt author;

			memset(&author, 0, sizeof(author));
			line_addrs(w.author, strlen(w.author), not_rcpt_add,
			    &author);
			text_scan(out, m, w.text, &author);
		}
		if (w.id_after[0] != '\0')
			memcpy(out->original_message_id, w.id_after, 256);
		else if (w.id_before[0] != '\0')
			memcpy(out->original_message_id, w.id_before, 256);
		else
			body_msgid(out, w.text);
		g_object_unref(m);
	}
	strbuf_free(w.text);
	g_object_unref(p);
	g_object_unref(st);
	free(buf);
	return out->nrcpt;
}

/* dsn_counts - see dsn.h. */
int
dsn_counts(const char *status)
{
	if (status == NULL)
		return 1;
	if (strncmp(status, "5.7.", 4) == 0)
		return 0;
	if (strcmp(status, "5.3.4") == 0 || strcmp(status, "5.2.3") == 0)
		return 0;
	return 1;
}
