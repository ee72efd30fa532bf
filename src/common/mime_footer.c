/* SPDX-License-Identifier: MIT */
/*
 * mime_footer.c - per-receiver footers spliced into a MIME message.
 *
 * mime_footer_plan parses the message once with GMime and turns it into a
 * list of segments: raw bytes of the (CRLF-normalised) input, literal bytes
 * made at plan time, and holes where a footer goes.  mime_footer_apply only
 * encodes the footers and concatenates, so it is cheap and needs no GMime.
 *
 * Encodings: a text part that gets a footer is rewritten once, at plan
 * time, as quoted-printable UTF-8 (content decoded, converted from its
 * charset, CRLF lines).  Quoted-printable is line-local, so the encoded
 * content and the encoded footer can be concatenated (a soft line break
 * "=\r\n" joins pieces that do not end a line): apply encodes only the
 * footer, whatever bytes or line lengths it has.  Everything else (other
 * headers, attachments, signed bodies) is copied byte for byte.  Where no
 * part can be edited the body is wrapped in a multipart/mixed with the
 * footer as a second part.  See docs/mime_footer.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "mime_footer.h"
#include "strbuf.h"
#include "xalloc.h"

enum seg_kind {
	SEG_SRC,		/* bytes of the normalised input */
	SEG_LIT,		/* bytes of plan->lit */
	SEG_TEXT,		/* hole: the text footer, quoted-printable */
	SEG_HTML,		/* hole: the html footer, quoted-printable */
};

#define SEG_SEP		0x01	/* a line break first (content ended mid-line) */
#define SEG_MORE	0x02	/* content follows: end on a line boundary */

struct seg {
	enum seg_kind kind;
	int	 flags;
	size_t	 off;
	size_t	 len;
};

struct mime_footer_plan {
	char	*src;		/* the input with CRLF lines */
	size_t	 srclen;
	struct strbuf *lit;
	struct seg *seg;
	size_t	 nseg;
	size_t	 segcap;
	size_t	 fixed;		/* bytes of SRC and LIT segments */
	int	 wrapped;	/* footer is a part of its own */
	int	 qp_last;	/* the message ends in quoted-printable text */
	int	 holes;		/* HOLE_TEXT | HOLE_HTML: the holes there are */
	size_t	 prefix;	/* output bytes before the first hole */
	struct strbuf *head;	/* those bytes */
	size_t	 cur;		/* build: src bytes up to here are placed */
};

#define HOLE_TEXT	0x01
#define HOLE_HTML	0x02

struct hdr {
	size_t	 off;
	const char *name;	/* borrowed from GMime */
};

struct target {
	GMimePart *part;
	int	 html;
	size_t	 start;
};

#define TARGET_MAX	2	/* a plain and an html part */
#define TSPECIALS	"()<>@,;:\\\"/[]?="	/* RFC 2045 */

/* seg_add - append one segment. */
static void
seg_add(struct mime_footer_plan *pl, enum seg_kind kind, size_t off,
    size_t len, int flags)
{
	struct seg *s;

	if ((kind == SEG_SRC || kind == SEG_LIT) && len == 0)
		return;
	if (pl->nseg == pl->segcap) {
		pl->segcap = pl->segcap ? pl->segcap * 2 : 16;
		pl->seg = xreallocarray(pl->seg, pl->segcap, sizeof(*pl->seg));
	}
	s = &pl->seg[pl->nseg++];
	s->kind = kind;
	s->off = off;
	s->len = len;
	s->flags = flags;
	if (kind == SEG_SRC || kind == SEG_LIT)
		pl->fixed += len;
}

/* src_to - place the input bytes from the cursor up to pos. */
static void
src_to(struct mime_footer_plan *pl, size_t pos)
{
	seg_add(pl, SEG_SRC, pl->cur, pos - pl->cur, 0);
	pl->cur = pos;
}

/* lit_add - append bytes to the literal store as one segment. */
static void
lit_add(struct mime_footer_plan *pl, const char *p, size_t n)
{
	size_t off = strbuf_len(pl->lit);

	strbuf_append(pl->lit, p, n);
	seg_add(pl, SEG_LIT, off, n, 0);
}

/* lit_sb - append a built buffer as a literal segment. */
static void
lit_sb(struct mime_footer_plan *pl, const struct strbuf *sb)
{
	lit_add(pl, strbuf_str(sb), strbuf_len(sb));
}

/* crlf_normalise - p with every LF, CR and CRLF as CRLF (into sb). */
static void
crlf_normalise(struct strbuf *sb, const char *p, size_t n)
{
	size_t i, run = 0;

	if (n == 0)
		return;		/* p may be NULL (an empty GByteArray) */
	for (i = 0; i < n; i++) {
		if (p[i] != '\r' && p[i] != '\n')
			continue;
		strbuf_append(sb, p + run, i - run);
		strbuf_append(sb, "\r\n", 2);
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
			i++;
		run = i + 1;
	}
	strbuf_append(sb, p + run, n - run);
}

/* ends_crlf - whether the buffer ends a line. */
static int
ends_crlf(const char *p, size_t n)
{
	return n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n';
}

/* qp_encode - append p as quoted-printable (RFC 2045): CRLF and LF are
 * line breaks (a lone CR is encoded), lines are at most 76 octets, and
 * whitespace before a line end or at the end of p is encoded, so a soft
 * line break or another piece may follow. */
static void
qp_encode(struct strbuf *sb, const char *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, col = 0, tl;
	unsigned char c;
	char tok[3];
	int brk;

	for (i = 0; i < n; i++) {
		c = (unsigned char)p[i];
		if (c == '\n' || (c == '\r' && i + 1 < n && p[i + 1] == '\n')) {
			if (c == '\r')
				i++;
			strbuf_append(sb, "\r\n", 2);
			col = 0;
			continue;
		}
		/* a hard break next allows a 76th octet; else keep room
		 * for the "=" of a soft break */
		brk = i + 1 < n && (p[i + 1] == '\n' || (p[i + 1] == '\r' &&
		    i + 2 < n && p[i + 2] == '\n'));
		if ((c >= 33 && c <= 126 && c != '=') ||
		    ((c == ' ' || c == '\t') && i + 1 < n && !brk)) {
			tok[0] = (char)c;
			tl = 1;
		} else {
			tok[0] = '=';
			tok[1] = hex[c >> 4];
			tok[2] = hex[c & 15];
			tl = 3;
		}
		if (col + tl > (brk ? 76u : 75u)) {
			strbuf_append(sb, "=\r\n", 3);
			col = 0;
		}
		strbuf_append(sb, tok, tl);
		col += tl;
	}
}

/* html_pre - text HTML-escaped inside <pre> (into sb; nothing for ""). */
static void
html_pre(struct strbuf *sb, const char *t)
{
	if (*t == '\0')
		return;
	strbuf_puts(sb, "<pre>");
	for (; *t != '\0'; t++) {
		switch (*t) {
		case '&':
			strbuf_puts(sb, "&amp;");
			break;
		case '<':
			strbuf_puts(sb, "&lt;");
			break;
		case '>':
			strbuf_puts(sb, "&gt;");
			break;
		case '"':
			strbuf_puts(sb, "&quot;");
			break;
		default:
			strbuf_putc(sb, *t);
		}
	}
	strbuf_puts(sb, "</pre>");
}

/* hdr_cmp - qsort by offset. */
static int
hdr_cmp(const void *a, const void *b)
{
	const struct hdr *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* field_ok - a field name as RFC 5322 has it: GMime also keeps lines
 * like ":x", which must not start a header we write. */
static int
field_ok(const char *name)
{
	if (name == NULL || *name == '\0')
		return 0;
	for (; *name != '\0'; name++)
		if (*name < 33 || *name > 126 || *name == ':')
			return 0;
	return 1;
}

/* hdr_collect - append o's headers that have an input offset; returns -1
 * when one lies outside [lo, hi).  A field with a bad name stays in the
 * extent of the one before it, or goes when it is first. */
static int
hdr_collect(GMimeObject *o, struct hdr **h, size_t *n, size_t lo, size_t hi)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(o);
	GMimeHeader *gh;
	gint64 off;
	int i, cnt;

	cnt = hl ? g_mime_header_list_get_count(hl) : 0;
	for (i = 0; i < cnt; i++) {
		gh = g_mime_header_list_get_header_at(hl, i);
		if ((off = g_mime_header_get_offset(gh)) < 0 ||
		    !field_ok(g_mime_header_get_name(gh)))
			continue;
		if ((size_t)off < lo || (size_t)off >= hi)
			return -1;
		*h = xreallocarray(*h, *n + 1, sizeof(**h));
		(*h)[*n].off = (size_t)off;
		(*h)[(*n)++].name = g_mime_header_get_name(gh);
	}
	return 0;
}

/* hdr_end - end of the header field starting at off: after the CRLF that
 * no continuation line follows, at most lim. */
static size_t
hdr_end(const char *s, size_t off, size_t lim)
{
	size_t i;

	for (i = off; i + 1 < lim; i++)
		if (s[i] == '\r' && s[i + 1] == '\n' && (i + 2 >= lim ||
		    (s[i + 2] != ' ' && s[i + 2] != '\t')))
			return i + 2;
	return lim;
}

/* param_ok - a parameter we can write again as name="value". */
static int
param_ok(const char *name, const char *value)
{
	const char *p;

	if (name == NULL || value == NULL || *name == '\0' ||
	    strlen(name) > 64 || strlen(value) > 512)
		return 0;
	for (p = name; *p != '\0'; p++)
		if (*p <= ' ' || *p >= 127 || strchr(TSPECIALS, *p))
			return 0;
	for (p = value; *p != '\0'; p++)
		if (*p < ' ' || *p >= 127)
			return 0;
	return 1;
}

/* ct_header - Content-Type of a rewritten text part: charset utf-8, the
 * other parameters kept (one per folded line, so lines stay short). */
static void
ct_header(struct strbuf *sb, GMimeObject *o, int html)
{
	GMimeContentType *ct = g_mime_object_get_content_type(o);
	GMimeParamList *pl;
	GMimeParam *p;
	const char *name, *value, *v;
	int i, n;

	strbuf_puts(sb, html ? "Content-Type: text/html; charset=utf-8" :
	    "Content-Type: text/plain; charset=utf-8");
	pl = ct ? g_mime_content_type_get_parameters(ct) : NULL;
	n = pl ? g_mime_param_list_length(pl) : 0;
	for (i = 0; i < n; i++) {
		p = g_mime_param_list_get_parameter_at(pl, i);
		name = g_mime_param_get_name(p);
		value = g_mime_param_get_value(p);
		if (!param_ok(name, value) || strcasecmp(name, "charset") == 0)
			continue;
		strbuf_appendf(sb, ";\r\n\t%s=", name);
		if (*value != '\0' && strpbrk(value, TSPECIALS " ") == NULL) {
			strbuf_puts(sb, value);
			continue;
		}
		strbuf_putc(sb, '"');
		for (v = value; *v != '\0'; v++) {
			if (*v == '"' || *v == '\\')
				strbuf_putc(sb, '\\');
			strbuf_putc(sb, *v);
		}
		strbuf_putc(sb, '"');
	}
	strbuf_puts(sb, "\r\nContent-Transfer-Encoding: quoted-printable\r\n");
}

/* part_utf8 - the decoded content of part in UTF-8 with CRLF lines (into
 * sb); -1 when its charset cannot be converted. */
static int
part_utf8(struct strbuf *sb, GMimePart *part)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *mem, *fs;
	GMimeFilter *f;
	GByteArray *ba;
	const char *cs;

	cs = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part),
	    "charset");
	ba = g_byte_array_new();
	mem = g_mime_stream_mem_new_with_byte_array(ba);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
	fs = g_mime_stream_filter_new(mem);
	/* no charset or us-ascii: UTF-8 is a superset, take the bytes */
	if (cs != NULL && g_ascii_strcasecmp(cs, "utf-8") != 0 &&
	    g_ascii_strcasecmp(cs, "utf8") != 0 &&
	    g_ascii_strcasecmp(cs, "us-ascii") != 0) {
		if ((f = g_mime_filter_charset_new(cs, "UTF-8")) == NULL) {
			g_object_unref(fs);
			g_object_unref(mem);
			g_byte_array_unref(ba);
			return -1;
		}
		g_mime_stream_filter_add(GMIME_STREAM_FILTER(fs), f);
		g_object_unref(f);
	}
	if (w != NULL)
		g_mime_data_wrapper_write_to_stream(w, fs);
	g_mime_stream_flush(fs);
	g_object_unref(fs);
	g_object_unref(mem);
	crlf_normalise(sb, (const char *)ba->data, ba->len);
	g_byte_array_unref(ba);
	return 0;
}

/* body_end - the offset of "</body" last in s (case-insensitive), or n. */
static size_t
body_end(const char *s, size_t n)
{
	size_t i;

	for (i = n; i >= 6; i--)
		if (s[i - 6] == '<' && s[i - 5] == '/' &&
		    strncasecmp(s + i - 4, "body", 4) == 0)
			return i - 6;
	return n;
}

/* touchable - a text/plain or text/html leaf that is not an attachment
 * (a file name makes it one too: a footer would change the file). */
static int
touchable(GMimeObject *o, int *html)
{
	GMimeContentType *ct;

	if (!GMIME_IS_PART(o) || GMIME_IS_MULTIPART(o) ||
	    g_mime_part_is_attachment(GMIME_PART(o)) ||
	    g_mime_part_get_filename(GMIME_PART(o)) != NULL)
		return 0;
	if ((ct = g_mime_object_get_content_type(o)) == NULL)
		return 0;
	if (g_mime_content_type_is_type(ct, "text", "plain"))
		*html = 0;
	else if (g_mime_content_type_is_type(ct, "text", "html"))
		*html = 1;
	else
		return 0;
	return 1;
}

/* first_html - the first html leaf under o (multipart/related). */
static GMimeObject *
first_html(GMimeObject *o, int depth)
{
	GMimeObject *r;
	int i, n, html;

	if (touchable(o, &html))
		return html ? o : NULL;
	if (!GMIME_IS_MULTIPART(o) || depth > 8)
		return NULL;
	n = g_mime_multipart_get_count(GMIME_MULTIPART(o));
	for (i = 0; i < n; i++)
		if ((r = first_html(g_mime_multipart_get_part(
		    GMIME_MULTIPART(o), i), depth + 1)) != NULL)
			return r;
	return NULL;
}

/* select_targets - the parts of o that get the footer: o itself if text,
 * the plain and html of an alternative, else the first such body of a
 * multipart (depth first); none under signed or encrypted parts. */
static int
select_targets(GMimeObject *o, struct target *t, int depth)
{
	GMimeContentType *ct = g_mime_object_get_content_type(o);
	GMimeMultipart *mp;
	GMimeObject *c, *h = NULL, *p = NULL;
	int i, n, html, nt;

	if (touchable(o, &html)) {
		t[0].part = GMIME_PART(o);
		t[0].html = html;
		return 1;
	}
	if (!GMIME_IS_MULTIPART(o) || GMIME_IS_MULTIPART_SIGNED(o) ||
	    GMIME_IS_MULTIPART_ENCRYPTED(o) || depth > 8 || ct == NULL)
		return 0;
	mp = GMIME_MULTIPART(o);
	n = g_mime_multipart_get_count(mp);
	if (g_mime_content_type_is_type(ct, "multipart", "alternative")) {
		for (i = 0; i < n; i++) {
			c = g_mime_multipart_get_part(mp, i);
			if (touchable(c, &html) && !html && p == NULL)
				p = c;
			else if (h == NULL && !GMIME_IS_MULTIPART_SIGNED(c) &&
			    !GMIME_IS_MULTIPART_ENCRYPTED(c))
				h = first_html(c, depth + 1);
		}
		nt = 0;
		if (p != NULL) {
			t[nt].part = GMIME_PART(p);
			t[nt++].html = 0;
		}
		if (h != NULL) {
			t[nt].part = GMIME_PART(h);
			t[nt++].html = 1;
		}
		return nt;
	}
	for (i = 0; i < n; i++)
		if ((nt = select_targets(g_mime_multipart_get_part(mp, i), t,
		    depth + 1)) > 0)
			return nt;
	return 0;
}

/* target_cmp - qsort by position in the input. */
static int
target_cmp(const void *a, const void *b)
{
	const struct target *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* content_bounds - where part's raw content lies in the input. */
static int
content_bounds(GMimePart *part, size_t srclen, size_t *bs, size_t *be)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *s;

	if (w == NULL || (s = g_mime_data_wrapper_get_stream(w)) == NULL)
		return -1;
	if (s->bound_start < 0 || s->bound_end < s->bound_start ||
	    (guint64)s->bound_end > srclen)
		return -1;
	*bs = (size_t)s->bound_start;
	*be = (size_t)s->bound_end;
	return 0;
}

/* touch - replace target t's headers and content with a quoted-printable
 * UTF-8 rewrite and a hole; top: t is the whole message body, whose
 * headers (from hb) are the message's. */
static int
touch(struct mime_footer_plan *pl, struct target *t, GMimeMessage *m,
    size_t hb, size_t he)
{
	GMimeObject *o = GMIME_OBJECT(t->part);
	int top = o == g_mime_message_get_mime_part(m);
	struct hdr *h = NULL;
	struct strbuf *sb = NULL, *body = NULL;
	size_t bs, be, rs, i, n = 0, end, split;
	int mimever = 0, cthere = 0, cut, rc = -1;

	if (content_bounds(t->part, pl->srclen, &bs, &be) != 0)
		return -1;
	/* GMime may end the content between the CR and LF that belong to
	 * the next boundary (seen with an unterminated last line): the
	 * CRLF goes with the boundary, or a bare LF would follow */
	cut = be > bs && be < pl->srclen && pl->src[be - 1] == '\r' &&
	    pl->src[be] == '\n';
	if (cut)
		be--;
	if (top && (hdr_collect(GMIME_OBJECT(m), &h, &n, hb, he) != 0 ||
	    hdr_collect(o, &h, &n, hb, he) != 0))
		goto out;
	if (!top && hdr_collect(o, &h, &n, pl->cur, bs) != 0)
		goto out;
	if (n > 1)
		qsort(h, n, sizeof(*h), hdr_cmp);
	if (top)
		rs = hb;
	else if (n > 0)
		rs = h[0].off;
	else
		rs = bs >= 2 && ends_crlf(pl->src, bs) ? bs - 2 : bs;
	if (rs < pl->cur || rs > bs || (top && he > bs))
		goto out;
	body = strbuf_new(be - bs + 64);
	if (part_utf8(body, t->part) != 0)
		goto out;
	if (cut && ends_crlf(strbuf_str(body), strbuf_len(body)))
		strbuf_truncate(body, strbuf_len(body) - 2);

	/* headers: raw but Content-Type and -Transfer-Encoding, rewritten */
	sb = strbuf_new(256);
	for (i = 0; i < n; i++) {
		end = i + 1 < n ? h[i + 1].off : top ? he :
		    hdr_end(pl->src, h[i].off, bs);
		if (strcasecmp(h[i].name, "Content-Transfer-Encoding") == 0)
			continue;
		if (strcasecmp(h[i].name, "Content-Type") == 0) {
			if (!cthere)
				ct_header(sb, o, t->html);
			cthere = 1;
			continue;
		}
		if (strcasecmp(h[i].name, "MIME-Version") == 0)
			mimever = 1;
		strbuf_append(sb, pl->src + h[i].off, end - h[i].off);
		if (!ends_crlf(strbuf_str(sb), strbuf_len(sb)))
			strbuf_append(sb, "\r\n", 2);
	}
	if (!cthere)
		ct_header(sb, o, t->html);
	if (top && !mimever)
		strbuf_puts(sb, "MIME-Version: 1.0\r\n");
	strbuf_append(sb, "\r\n", 2);

	src_to(pl, rs);
	lit_sb(pl, sb);
	strbuf_reset(sb);
	if (!t->html) {
		qp_encode(sb, strbuf_str(body), strbuf_len(body));
		lit_sb(pl, sb);
		seg_add(pl, SEG_TEXT, 0, 0, strbuf_len(body) > 0 &&
		    !ends_crlf(strbuf_str(body), strbuf_len(body)) ? SEG_SEP : 0);
	} else {
		split = body_end(strbuf_str(body), strbuf_len(body));
		qp_encode(sb, strbuf_str(body), split);
		if (split > 0 && !ends_crlf(strbuf_str(sb), strbuf_len(sb)))
			strbuf_append(sb, "=\r\n", 3);
		lit_sb(pl, sb);
		seg_add(pl, SEG_HTML, 0, 0,
		    split < strbuf_len(body) ? SEG_MORE : 0);
		strbuf_reset(sb);
		qp_encode(sb, strbuf_str(body) + split,
		    strbuf_len(body) - split);
		lit_sb(pl, sb);
	}
	pl->cur = be;
	pl->qp_last = be == pl->srclen;
	rc = 0;
out:
	free(h);
	strbuf_free(sb);
	strbuf_free(body);
	return rc;
}

/* wrap - the body as the first part of a new multipart/mixed, the footer
 * a text/plain part after it; the body's Content-* fields move with it. */
static int
wrap(struct mime_footer_plan *pl, GMimeMessage *m, size_t hb, size_t he)
{
	struct hdr *h = NULL;
	struct strbuf *sb, *inner;
	size_t i, n = 0, end, cs;
	char bnd[64];
	uint32_t x;
	int mimever = 0, tries;

	if (he > pl->srclen || hb > he ||
	    hdr_collect(GMIME_OBJECT(m), &h, &n, hb, he) != 0 ||
	    (g_mime_message_get_mime_part(m) != NULL &&
	    hdr_collect(g_mime_message_get_mime_part(m), &h, &n, hb, he) != 0)) {
		free(h);
		return -1;
	}
	if (n > 1)
		qsort(h, n, sizeof(*h), hdr_cmp);
	/* a boundary that cannot occur in the body */
	x = (uint32_t)pl->srclen * 2654435761u;
	for (tries = 0; ; tries++) {
		x = x * 1103515245u + 12345u;
		(void)snprintf(bnd, sizeof(bnd), "=_footer_%08x%02x",
		    (unsigned)x, (unsigned)tries);
		if (memmem(pl->src, pl->srclen, bnd, strlen(bnd)) == NULL)
			break;
	}
	cs = he + 2 <= pl->srclen && ends_crlf(pl->src, he + 2) ? he + 2 : he;

	sb = strbuf_new(256);
	inner = strbuf_new(256);
	src_to(pl, hb);
	for (i = 0; i < n; i++) {
		end = i + 1 < n ? h[i + 1].off : he;
		if (strncasecmp(h[i].name, "Content-", 8) == 0) {
			strbuf_append(inner, pl->src + h[i].off, end - h[i].off);
			if (!ends_crlf(strbuf_str(inner), strbuf_len(inner)))
				strbuf_append(inner, "\r\n", 2);
			continue;
		}
		if (strcasecmp(h[i].name, "MIME-Version") == 0)
			mimever = 1;
		if (strbuf_len(sb) > 0) {
			lit_sb(pl, sb);
			strbuf_reset(sb);
		}
		pl->cur = h[i].off;
		src_to(pl, end);
		if (!ends_crlf(pl->src, end))
			strbuf_append(sb, "\r\n", 2);
	}
	if (!mimever)
		strbuf_puts(sb, "MIME-Version: 1.0\r\n");
	strbuf_appendf(sb, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n"
	    "\r\n--%s\r\n", bnd, bnd);
	strbuf_append(sb, strbuf_str(inner), strbuf_len(inner));
	strbuf_append(sb, "\r\n", 2);
	lit_sb(pl, sb);
	pl->cur = cs;
	src_to(pl, pl->srclen);
	strbuf_reset(sb);
	strbuf_appendf(sb, "\r\n--%s\r\nContent-Type: text/plain; "
	    "charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
	    "Content-Disposition: inline\r\n\r\n", bnd);
	lit_sb(pl, sb);
	seg_add(pl, SEG_TEXT, 0, 0, 0);
	strbuf_reset(sb);
	strbuf_appendf(sb, "\r\n--%s--\r\n", bnd);
	lit_sb(pl, sb);
	pl->wrapped = 1;
	strbuf_free(sb);
	strbuf_free(inner);
	free(h);
	return 0;
}

/* plan_reset - forget the segments built so far. */
static void
plan_reset(struct mime_footer_plan *pl)
{
	pl->nseg = 0;
	pl->fixed = 0;
	pl->cur = 0;
	pl->wrapped = pl->qp_last = pl->holes = 0;
	pl->prefix = 0;
	strbuf_free(pl->head);
	pl->head = NULL;
	strbuf_reset(pl->lit);
}

/* plan_finish - note the holes and the bytes before the first one. */
static void
plan_finish(struct mime_footer_plan *pl)
{
	const struct seg *s;
	size_t i;
	int fixed = 1;

	pl->head = strbuf_new(pl->fixed + 1);
	for (i = 0; i < pl->nseg; i++) {
		s = &pl->seg[i];
		if (s->kind == SEG_TEXT || s->kind == SEG_HTML) {
			pl->holes |= s->kind == SEG_TEXT ? HOLE_TEXT :
			    HOLE_HTML;
			fixed = 0;
		} else if (fixed)
			strbuf_append(pl->head, s->kind == SEG_SRC ?
			    pl->src + s->off : strbuf_str(pl->lit) + s->off,
			    s->len);
	}
	pl->prefix = strbuf_len(pl->head);
}

/* crlf_only - whether p is lines that each end in CRLF, with no other CR
 * or LF. */
static int
crlf_only(const char *p, size_t n)
{
	const char *e = p + n, *c;
	size_t lf = 0, cr = 0;

	if (!ends_crlf(p, n))
		return 0;
	/* every LF after a CR, and no more CRs than LFs: no CR alone */
	for (c = p; (c = memchr(c, '\n', (size_t)(e - c))) != NULL; c++, lf++)
		if (c == p || c[-1] != '\r')
			return 0;
	for (c = p; (c = memchr(c, '\r', (size_t)(e - c))) != NULL; c++)
		cr++;
	return cr == lf;
}

/* plan_sound - whether every output of pl is CRLF lines, whichever holes
 * get a footer and which stay empty.  The footers are encoded into whole
 * lines, so only where the fixed pieces meet could a CR and an LF come
 * apart (a boundary GMime placed oddly in hostile input); these four
 * outputs try every such meeting.  Once per plan, not per receiver. */
static int
plan_sound(const struct mime_footer_plan *pl)
{
	static const char *const f[4][2] = {
		{ "", "" }, { "x", "" }, { "", "x" }, { "x", "x" },
	};
	char *out;
	size_t i, n;
	int ok = 1;

	for (i = 0; i < 4 && ok; i++) {
		out = mime_footer_apply(pl, f[i][0], f[i][1], &n);
		ok = crlf_only(out, n);
		free(out);
	}
	return ok;
}

struct mime_footer_plan *
mime_footer_plan(const char *msg, size_t len, char *err, size_t errlen)
{
	struct mime_footer_plan *pl;
	struct strbuf *norm;
	struct target t[TARGET_MAX];
	GMimeStream *st;
	GMimeParser *parser;
	GMimeMessage *m;
	GMimeObject *body;
	size_t hb, he, bs = 0, be;
	gint64 v;
	int i, nt, ok;

	norm = strbuf_new(len + len / 32 + 16);
	crlf_normalise(norm, msg, len);
	st = g_mime_stream_mem_new_with_buffer(strbuf_str(norm),
	    strbuf_len(norm));
	parser = g_mime_parser_new_with_stream(st);
	g_mime_parser_set_persist_stream(parser, TRUE);
	m = g_mime_parser_construct_message(parser, NULL);
	if (m == NULL || (body = g_mime_message_get_mime_part(m)) == NULL) {
		(void)snprintf(err, errlen, "not a MIME message");
		goto fail;
	}
	if ((v = g_mime_parser_get_headers_begin(parser)) < 0 ||
	    (size_t)v > strbuf_len(norm)) {
		(void)snprintf(err, errlen, "no header");
		goto fail;
	}
	hb = (size_t)v;
	/* no empty line: the header runs to the end */
	v = g_mime_parser_get_headers_end(parser);
	he = v < (gint64)hb || (size_t)v > strbuf_len(norm) ?
	    strbuf_len(norm) : (size_t)v;

	pl = xcalloc(1, sizeof(*pl));
	pl->srclen = strbuf_len(norm);
	pl->src = strbuf_detach(norm, NULL);
	norm = NULL;
	pl->lit = strbuf_new(1024);

	memset(t, 0, sizeof(t));
	nt = select_targets(body, t, 0);
	for (i = 0, ok = nt > 0; i < nt && ok; i++) {
		if (content_bounds(t[i].part, pl->srclen, &bs, &be) != 0)
			ok = 0;
		t[i].start = bs;
	}
	if (ok) {
		qsort(t, (size_t)nt, sizeof(*t), target_cmp);
		for (i = 0; i < nt && ok; i++)
			ok = touch(pl, &t[i], m, hb, he) == 0;
		if (ok) {
			src_to(pl, pl->srclen);
			plan_finish(pl);
			ok = plan_sound(pl);
		}
	}
	if (!ok) {
		plan_reset(pl);
		if (wrap(pl, m, hb, he) != 0) {
			(void)snprintf(err, errlen, "cannot locate the body");
			pl = mime_footer_plan_free(pl);
		} else {
			plan_finish(pl);
			if (!plan_sound(pl)) {
				(void)snprintf(err, errlen,
				    "cannot place a footer in its lines");
				pl = mime_footer_plan_free(pl);
			}
		}
	}
	g_object_unref(m);
	g_object_unref(parser);
	g_object_unref(st);
	return pl;
fail:
	if (m != NULL)
		g_object_unref(m);
	g_object_unref(parser);
	g_object_unref(st);
	strbuf_free(norm);
	return NULL;
}

char *
mime_footer_apply(const struct mime_footer_plan *pl, const char *text,
    const char *html, size_t *outlen)
{
	struct strbuf *out, *qt, *qh, *hb = NULL, *q;
	const struct seg *s;
	size_t i;

	if (text == NULL)
		text = "";
	/* nothing to add as a part of its own: the message as it came */
	if (pl->wrapped && *text == '\0') {
		out = strbuf_new(pl->srclen);
		strbuf_append(out, pl->src, pl->srclen);
		if (!ends_crlf(pl->src, pl->srclen))
			strbuf_append(out, "\r\n", 2);
		return strbuf_detach(out, outlen);
	}
	/* only what a hole of the plan takes is encoded */
	qt = strbuf_new(pl->holes & HOLE_TEXT ? strlen(text) * 3 / 2 + 16 : 1);
	if (pl->holes & HOLE_TEXT)
		qp_encode(qt, text, strlen(text));
	if (html == NULL && (pl->holes & HOLE_HTML)) {
		hb = strbuf_new(strlen(text) + 64);
		html_pre(hb, text);
		html = strbuf_str(hb);
	}
	qh = strbuf_new(pl->holes & HOLE_HTML ? strlen(html) * 3 / 2 + 16 : 1);
	if (pl->holes & HOLE_HTML)
		qp_encode(qh, html, strlen(html));

	out = strbuf_new(pl->fixed + 2 * (strbuf_len(qt) + strbuf_len(qh)) +
	    16);
	for (i = 0; i < pl->nseg; i++) {
		s = &pl->seg[i];
		switch (s->kind) {
		case SEG_SRC:
			strbuf_append(out, pl->src + s->off, s->len);
			break;
		case SEG_LIT:
			strbuf_append(out, strbuf_str(pl->lit) + s->off,
			    s->len);
			break;
		case SEG_TEXT:
		case SEG_HTML:
			q = s->kind == SEG_TEXT ? qt : qh;
			if (strbuf_len(q) == 0)
				break;
			if (s->flags & SEG_SEP)
				strbuf_append(out, "\r\n", 2);
			strbuf_append(out, strbuf_str(q), strbuf_len(q));
			if ((s->flags & SEG_MORE) &&
			    !ends_crlf(strbuf_str(q), strbuf_len(q)))
				strbuf_append(out, "=\r\n", 3);
			break;
		}
	}
	/* a message ends a line; a soft break keeps the text as it was */
	if (!ends_crlf(strbuf_str(out), strbuf_len(out)))
		strbuf_puts(out, pl->qp_last ? "=\r\n" : "\r\n");
	strbuf_free(qt);
	strbuf_free(qh);
	strbuf_free(hb);
	/* plan_sound tried every meeting of the pieces with short footers;
	 * should a footer still part a CR from its LF, the copy goes out
	 * with its line ends mended rather than with a bare one */
	if (!crlf_only(strbuf_str(out), strbuf_len(out))) {
		q = strbuf_new(strbuf_len(out) + 64);
		crlf_normalise(q, strbuf_str(out), strbuf_len(out));
		strbuf_free(out);
		out = q;
	}
	return strbuf_detach(out, outlen);
}

struct mime_footer_plan *
mime_footer_plan_free(struct mime_footer_plan *pl)
{
	if (pl == NULL)
		return NULL;
	free(pl->src);
	free(pl->seg);
	strbuf_free(pl->lit);
	strbuf_free(pl->head);
	free(pl);
	return NULL;
}

int
mime_footer_wants_html(const struct mime_footer_plan *pl)
{
	return (pl->holes & HOLE_HTML) != 0;
}

const char *
mime_footer_prefix(const struct mime_footer_plan *pl, size_t *lenp)
{
	*lenp = pl->prefix;
	return strbuf_str(pl->head);
}
