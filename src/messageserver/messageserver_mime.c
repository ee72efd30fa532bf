/* SPDX-License-Identifier: MIT */
/*
 * messageserver_mime.c - turn the bytes of a message into what the archive
 * stores, with GMime 3.
 *
 * Headers come out decoded (RFC 2047 to UTF-8, GMime 3 returns decoded
 * values); the first text/plain part that is not an attachment becomes the
 * body, converted to UTF-8 through a charset filter (text/html stripped
 * crudely when there is no plain part), messages forwarded inline read
 * as part of the post; parts with a file name and attached messages
 * become attachments.  Malformed structure is read as Postfix and Python
 * read it, so no text is lost: a header block may end without its blank
 * line, and an invalid Content-Type is text/plain.  Every string handed
 * on is valid UTF-8 without NUL bytes and bounded (messageserver.h),
 * whatever the input: undeclared 8-bit text is taken as ISO-8859-1.  A
 * message without a Message-ID gets one derived from its bytes, so that
 * a retried delivery is still a duplicate.
 */
#include <ctype.h>
#include <string.h>

#include <gmime/gmime.h>

#include "log.h"
#include "messageserver.h"
#include "strbuf.h"
#include "xalloc.h"

void
messageserver_mime_init(void)
{
	g_mime_init();
}

void
messageserver_mime_fini(void)
{
	g_mime_shutdown();
}

/* utf8_clean - s (len bytes) as valid UTF-8 without NUL, at most max
 * bytes, cut on a character boundary (returns allocated, caller frees). */
static char *
utf8_clean(const char *s, size_t len, size_t max)
{
	char *conv = NULL, *out;
	const char *end;
	size_t i, j;

	if (s == NULL)
		return xstrdup("");
	if (!g_utf8_validate(s, (gssize)len, NULL)) {
		conv = g_convert(s, (gssize)len, "UTF-8", "ISO-8859-1", NULL,
		    &len, NULL);
		if (conv == NULL)
			return xstrdup("");
		s = conv;
	}
	if (len > max) {
		len = max;
		/* back off to the start of a character */
		while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--;
	}
	out = xmalloc(len + 1);
	for (i = j = 0; i < len; i++)
		if (s[i] != '\0')
			out[j++] = s[i];
	out[j] = '\0';
	if (!g_utf8_validate(out, (gssize)j, &end))
		out[end - out] = '\0';
	g_free(conv);
	return out;
}

/* part_bytes - the decoded content of part, converted from charset to
 * UTF-8 when charset is not NULL (returns a GByteArray, caller unrefs). */
static GByteArray *
part_bytes(GMimePart *part, const char *charset)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *mem, *fs;
	GMimeFilter *f;
	GByteArray *ba;

	ba = g_byte_array_new();
	if (w == NULL)
		return ba;
	mem = g_mime_stream_mem_new_with_byte_array(ba);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
	fs = g_mime_stream_filter_new(mem);
	if (charset != NULL && g_ascii_strcasecmp(charset, "utf-8") != 0 &&
	    g_ascii_strcasecmp(charset, "us-ascii") != 0 &&
	    (f = g_mime_filter_charset_new(charset, "UTF-8")) != NULL) {
		g_mime_stream_filter_add(GMIME_STREAM_FILTER(fs), f);
		g_object_unref(f);
	}
	g_mime_data_wrapper_write_to_stream(w, fs);
	g_mime_stream_flush(fs);
	g_object_unref(fs);
	g_object_unref(mem);
	return ba;
}

/* html_strip - crude text of html: tags dropped, a few entities decoded
 * (returns allocated, caller frees). */
static char *
html_strip(const char *h)
{
	struct strbuf *sb = strbuf_new(strlen(h) + 1);
	int intag = 0;

	for (; *h != '\0'; h++) {
		if (intag) {
			if (*h == '>')
				intag = 0;
		} else if (*h == '<') {
			intag = 1;
		} else if (strncmp(h, "&amp;", 5) == 0) {
			strbuf_putc(sb, '&');
			h += 4;
		} else if (strncmp(h, "&lt;", 4) == 0) {
			strbuf_putc(sb, '<');
			h += 3;
		} else if (strncmp(h, "&gt;", 4) == 0) {
			strbuf_putc(sb, '>');
			h += 3;
		} else if (strncmp(h, "&nbsp;", 6) == 0) {
			strbuf_putc(sb, ' ');
			h += 5;
		} else {
			strbuf_putc(sb, *h);
		}
	}
	return strbuf_detach(sb, NULL);
}

struct walk {
	struct ms_parsed *p;
	char	*html;
	int	 depth;		/* message/rfc822 levels entered */
};

static void walk_part(GMimeObject *, GMimeObject *, gpointer);

/* attachment_add - a new entry of p->att for len bytes of data. */
static struct ms_attachment *
attachment_add(struct ms_parsed *p, const void *data, size_t len)
{
	struct ms_attachment *a;
	gchar *sum;

	p->att = xreallocarray(p->att, p->natt + 1, sizeof(*p->att));
	a = &p->att[p->natt++];
	memset(a, 0, sizeof(*a));
	a->len = len;
	a->data = xmalloc(len + 1);
	if (len > 0)
		memcpy(a->data, data, len);
	sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, data, len);
	strlcpy_chk(a->sha256, sum, sizeof(a->sha256));
	g_free(sum);
	return a;
}

/* walk_message - a message/rfc822 part: one attached (a disposition of
 * attachment or a file name) is stored whole as message.eml or its name;
 * one forwarded inline is read like the rest of the message, so a post
 * that only forwards a message has that message's text as its body (as
 * mail readers show it and Python's email package reads it). */
static void
walk_message(GMimeObject *obj, struct walk *w)
{
	GMimeMessage *m = g_mime_message_part_get_message(
	    GMIME_MESSAGE_PART(obj));
	GMimeContentDisposition *cd = g_mime_object_get_content_disposition(
	    obj);
	struct ms_parsed *p = w->p;
	struct ms_attachment *a;
	GMimeStream *mem;
	GByteArray *ba;
	const char *fn;

	fn = g_mime_object_get_content_disposition_parameter(obj, "filename");
	if (fn == NULL)
		fn = g_mime_object_get_content_type_parameter(obj, "name");
	if (m == NULL)
		return;
	if (fn == NULL && (cd == NULL ||
	    !g_mime_content_disposition_is_attachment(cd))) {
		if (w->depth >= MS_EMBED_DEPTH)
			return;
		w->depth++;
		g_mime_message_foreach(m, walk_part, w);
		w->depth--;
		return;
	}
	if (p->natt >= MS_ATTACH_MAX)
		return;
	ba = g_byte_array_new();
	mem = g_mime_stream_mem_new_with_byte_array(ba);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
	g_mime_object_write_to_stream(GMIME_OBJECT(m), NULL, mem);
	g_object_unref(mem);
	a = attachment_add(p, ba->data, ba->len);
	g_byte_array_unref(ba);
	if (fn == NULL)
		fn = "message.eml";
	a->filename = utf8_clean(fn, strlen(fn), 255);
	a->content_type = xstrdup("message/rfc822");
	a->inline_disp = cd != NULL &&
	    !g_mime_content_disposition_is_attachment(cd);
}

/* type_invalid - 1 if obj's Content-Type is not "type/subtype" at all
 * ("text", ";charset=x"): RFC 2045 5.2 recommends taking such a part as
 * text/plain, as Python's email package does, where GMime makes it
 * application/octet-stream and the text would be lost. */
static int
type_invalid(GMimeObject *obj, GMimeContentType *ct)
{
	static const char tspecials[] = " \t\r\n()<>@,;:\\\"/[]?=";
	static const char wsp[] = " \t\r\n";
	const char *v;
	size_t n;

	/* only GMime's replacement can hide an invalid type */
	if (!g_mime_content_type_is_type(ct, "application", "octet-stream") ||
	    (v = g_mime_object_get_header(obj, "Content-Type")) == NULL)
		return 0;
	v += strspn(v, wsp);
	n = strcspn(v, tspecials);
	if (n == 0)
		return 1;
	v += n + strspn(v + n, wsp);
	if (*v != '/')
		return 1;
	v++;
	v += strspn(v, wsp);
	return strcspn(v, tspecials) == 0;
}

/* walk_part - g_mime_message_foreach callback: bodies and attachments. */
static void
walk_part(GMimeObject *parent, GMimeObject *obj, gpointer data)
{
	struct walk *w = data;
	struct ms_parsed *p = w->p;
	GMimeContentType *ct;
	GMimePart *part;
	GByteArray *ba;
	const char *fn, *cs, *cid;
	struct ms_attachment *a;
	gchar *mt;
	int plain;

	(void)parent;
	if (GMIME_IS_MESSAGE_PART(obj)) {
		walk_message(obj, w);
		return;
	}
	if (!GMIME_IS_PART(obj))
		return;
	part = GMIME_PART(obj);
	ct = g_mime_object_get_content_type(obj);
	fn = g_mime_part_get_filename(part);
	plain = g_mime_content_type_is_type(ct, "text", "plain") ||
	    type_invalid(obj, ct);
	if (!g_mime_part_is_attachment(part) && fn == NULL &&
	    (plain || g_mime_content_type_is_type(ct, "text", "*"))) {
		cs = g_mime_object_get_content_type_parameter(obj, "charset");
		if (p->body_text == NULL && plain) {
			ba = part_bytes(part, cs);
			p->body_text = utf8_clean((const char *)ba->data,
			    ba->len, MS_BODY_MAX);
			g_byte_array_unref(ba);
		} else if (w->html == NULL &&
		    g_mime_content_type_is_type(ct, "text", "html")) {
			ba = part_bytes(part, cs);
			w->html = utf8_clean((const char *)ba->data, ba->len,
			    MS_HTML_MAX);
			g_byte_array_unref(ba);
		}
		return;
	}
	if (fn == NULL || p->natt >= MS_ATTACH_MAX)
		return;
	ba = part_bytes(part, NULL);
	a = attachment_add(p, ba->data, ba->len);
	g_byte_array_unref(ba);
	a->filename = utf8_clean(fn, strlen(fn), 255);
	mt = g_mime_content_type_get_mime_type(ct);
	a->content_type = utf8_clean(mt, strlen(mt), 255);
	g_free(mt);
	a->inline_disp = !g_mime_part_is_attachment(part);
	cid = g_mime_part_get_content_id(part);
	a->content_id = cid ? utf8_clean(cid, strlen(cid), 998) : NULL;
}

/* header - a decoded header of the message, cleaned (allocated) or NULL. */
static char *
header(GMimeMessage *m, const char *name, size_t max)
{
	const char *v = g_mime_object_get_header(GMIME_OBJECT(m), name);

	return v ? utf8_clean(v, strlen(v), max) : NULL;
}

/* msgid_list - the Message-IDs in value, appended to *ids. */
static void
msgid_list(const char *value, char ***ids, size_t *n)
{
	GMimeReferences *refs;
	const char *id;
	int i, len;

	if (value == NULL)
		return;
	if ((refs = g_mime_references_parse(NULL, value)) == NULL)
		return;
	len = g_mime_references_length(refs);
	for (i = 0; i < len && *n < MS_REFS_MAX; i++) {
		id = g_mime_references_get_message_id(refs, i);
		if (id == NULL || *id == '\0')
			continue;
		*ids = xreallocarray(*ids, *n + 1, sizeof(**ids));
		(*ids)[(*n)++] = utf8_clean(id, strlen(id), MS_MSGID_MAX);
	}
	g_mime_references_free(refs);
}

/* set_date - sent_at from the Date header, if it parsed sensibly. */
static void
set_date(GMimeMessage *m, struct ms_parsed *p)
{
	GDateTime *dt = g_mime_message_get_date(m);
	gchar *s;

	if (dt == NULL || g_date_time_get_year(dt) < 1970 ||
	    g_date_time_get_year(dt) > 9999)
		return;
	if ((s = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%S%:z")) != NULL) {
		p->sent_at = xstrdup(s);
		g_free(s);
	}
}

/* set_from - the first mailbox of From, else fallback. */
static void
set_from(GMimeMessage *m, const char *fallback, struct ms_parsed *p)
{
	InternetAddressList *l = g_mime_message_get_from(m);
	InternetAddress *ia;
	const char *name, *addr;
	int i;

	for (i = 0; l != NULL && i < internet_address_list_length(l); i++) {
		ia = internet_address_list_get_address(l, i);
		if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
			continue;
		addr = internet_address_mailbox_get_addr(
		    INTERNET_ADDRESS_MAILBOX(ia));
		if (addr == NULL || *addr == '\0')
			continue;
		name = internet_address_get_name(ia);
		p->from_addr = utf8_clean(addr, strlen(addr), 254);
		p->from_name = utf8_clean(name, name ? strlen(name) : 0,
		    MS_NAME_MAX);
		return;
	}
	p->from_addr = utf8_clean(fallback, fallback ? strlen(fallback) : 0,
	    254);
	p->from_name = xstrdup("");
}

/* set_message_id - Message-ID, or one derived from the bytes. */
static void
set_message_id(GMimeMessage *m, const void *raw, size_t len,
    const char *domain, struct ms_parsed *p)
{
	const char *id = g_mime_message_get_message_id(m);
	gchar *sum;

	if (id != NULL && *id != '\0' && strlen(id) <= MS_MSGID_MAX) {
		p->message_id = utf8_clean(id, strlen(id), MS_MSGID_MAX);
		if (p->message_id[0] != '\0')
			return;
		free(p->message_id);
	}
	sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, raw, len);
	p->message_id = xasprintf("%.32s@%s", sum, domain);
	g_free(sum);
}

/* append_line - *dst += "\n" v, bounded to max bytes in all. */
static void
append_line(char **dst, const char *v, size_t max)
{
	char *c = utf8_clean(v, strlen(v), max), *n;

	if (*dst == NULL) {
		*dst = c;
		return;
	}
	if (strlen(*dst) + strlen(c) + 1 <= max) {
		n = xasprintf("%s\n%s", *dst, c);
		free(*dst);
		*dst = n;
	}
	free(c);
}

/* set_automation - the headers that tell a list post from mail a machine
 * sent or that already went through a list (loop checks). */
static void
set_automation(GMimeHeaderList *hl, struct ms_parsed *p)
{
	GMimeHeader *h;
	const char *name, *v;
	int i, n = g_mime_header_list_get_count(hl);

	for (i = 0; i < n; i++) {
		h = g_mime_header_list_get_header_at(hl, i);
		name = g_mime_header_get_name(h);
		v = g_mime_header_get_value(h);
		if (name == NULL || v == NULL)
			continue;
		if (g_ascii_strcasecmp(name, "List-Id") == 0)
			append_line(&p->list_ids, v, MS_LOOPHDR_MAX);
		else if (g_ascii_strcasecmp(name, "X-Loop") == 0)
			append_line(&p->x_loops, v, MS_LOOPHDR_MAX);
		else if (g_ascii_strcasecmp(name, "Auto-Submitted") == 0 &&
		    p->auto_submitted == NULL)
			p->auto_submitted = utf8_clean(v, strlen(v), 200);
		else if (g_ascii_strcasecmp(name, "Precedence") == 0 &&
		    p->precedence == NULL)
			p->precedence = utf8_clean(v, strlen(v), 200);
		else if (g_ascii_strcasecmp(name, "X-Autoreply") == 0 ||
		    g_ascii_strcasecmp(name, "X-Autorespond") == 0)
			p->autoreply = 1;
	}
}

int
messageserver_field_line(const char *l, const char *e)
{
	const char *c = l;

	if (l < e && (*l == ' ' || *l == '\t'))
		return 1;
	while (c < e && *c > ' ' && *c < 127 && *c != ':')
		c++;
	if (c == l)
		return 0;
	while (c < e && (*c == ' ' || *c == '\t'))
		c++;
	return c < e && *c == ':';
}

/* body_start - offset of the first line of the header block of raw that
 * is neither a field nor a continuation (messageserver_field_line), when
 * no blank line came before it; 0 when the block is well formed.  GMime
 * skips such a line and reads on; Postfix and Python's email package take
 * it as the start of the body, which keeps the text, so it is given a
 * blank line first.  A leading mbox "From " line is GMime's to skip. */
static size_t
body_start(const char *raw, size_t len)
{
	const char *nl;
	size_t i = 0, e;

	if (len >= 5 && memcmp(raw, "From ", 5) == 0) {
		if ((nl = memchr(raw, '\n', len)) == NULL)
			return 0;
		i = (size_t)(nl - raw) + 1;
	}
	for (; i < len; i = e + 1) {
		nl = memchr(raw + i, '\n', len - i);
		e = nl != NULL ? (size_t)(nl - raw) : len;
		if (raw[i] == '\n' || (raw[i] == '\r' && i + 1 < len &&
		    raw[i + 1] == '\n'))
			return 0;		/* the blank line */
		if (!messageserver_field_line(raw + i, raw + e))
			return i;
	}
	return 0;
}

int
messageserver_mime_parse(const void *raw, size_t len,
    const char *fallback_from, const char *msgid_domain, struct ms_parsed *p)
{
	GMimeStream *st;
	GMimeParser *parser;
	GMimeMessage *m;
	GMimeHeaderList *hl;
	struct walk w;
	char **irt = NULL;
	size_t nirt = 0, i, b;

	memset(p, 0, sizeof(*p));
	if (len == 0)
		return -1;
	if ((b = body_start(raw, len)) > 0) {
		/* the header block ends early: a blank line where it does */
		st = g_mime_stream_mem_new();
		g_mime_stream_write(st, raw, b);
		if (b >= 2 && ((const char *)raw)[b - 2] == '\r')
			g_mime_stream_write(st, "\r\n", 2);
		else
			g_mime_stream_write(st, "\n", 1);
		g_mime_stream_write(st, (const char *)raw + b, len - b);
		g_mime_stream_reset(st);
	} else
		st = g_mime_stream_mem_new_with_buffer(raw, len);
	parser = g_mime_parser_new_with_stream(st);
	g_object_unref(st);
	m = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	if (m == NULL)
		return -1;
	hl = g_mime_object_get_header_list(GMIME_OBJECT(m));
	/* GMime files Content-* under the MIME part: a message whose only
	 * header is its Content-Type is still a message */
	if (hl == NULL || (g_mime_header_list_get_count(hl) == 0 &&
	    (g_mime_message_get_mime_part(m) == NULL ||
	    g_mime_header_list_get_count(g_mime_object_get_header_list(
	    g_mime_message_get_mime_part(m))) == 0))) {
		g_object_unref(m);
		return -1;
	}
	set_message_id(m, raw, len, msgid_domain, p);
	p->subject = header(m, "Subject", MS_SUBJECT_MAX);
	if (p->subject == NULL)
		p->subject = xstrdup("");
	set_from(m, fallback_from, p);
	set_date(m, p);
	set_automation(hl, p);
	msgid_list(g_mime_object_get_header(GMIME_OBJECT(m), "In-Reply-To"),
	    &irt, &nirt);
	if (nirt > 0)
		p->in_reply_to = xstrdup(irt[0]);
	for (i = 0; i < nirt; i++)
		free(irt[i]);
	free(irt);
	msgid_list(g_mime_object_get_header(GMIME_OBJECT(m), "References"),
	    &p->refs, &p->nrefs);

	w.p = p;
	w.html = NULL;
	w.depth = 0;
	g_mime_message_foreach(m, walk_part, &w);
	if (p->body_text == NULL)
		p->body_text = w.html ? html_strip(w.html) : xstrdup("");
	p->body_html = w.html;
	g_object_unref(m);
	return 0;
}

void
messageserver_mime_free(struct ms_parsed *p)
{
	size_t i;

	if (p == NULL)
		return;
	free(p->message_id);
	free(p->subject);
	free(p->from_name);
	free(p->from_addr);
	free(p->sent_at);
	free(p->in_reply_to);
	free(p->list_ids);
	free(p->x_loops);
	free(p->auto_submitted);
	free(p->precedence);
	for (i = 0; i < p->nrefs; i++)
		free(p->refs[i]);
	free(p->refs);
	free(p->body_text);
	free(p->body_html);
	for (i = 0; i < p->natt; i++) {
		free(p->att[i].filename);
		free(p->att[i].content_type);
		free(p->att[i].content_id);
		free(p->att[i].data);
	}
	free(p->att);
	memset(p, 0, sizeof(*p));
}

/* strip_prefix - length of one reply/forward prefix or [tag] at s, or 0. */
static size_t
strip_prefix(const char *s)
{
	static const char *const pfx[] = { "re", "fwd", "fw", "aw", "sv",
	    "wg", "tr", NULL };
	const char *e;
	size_t i, n;

	if (*s == '[') {
		e = strchr(s, ']');
		if (e != NULL && e - s <= MS_HASHTAG_LEN + 1)
			return (size_t)(e - s) + 1;
		return 0;
	}
	for (i = 0; pfx[i] != NULL; i++) {
		n = strlen(pfx[i]);
		if (g_ascii_strncasecmp(s, pfx[i], n) != 0)
			continue;
		e = s + n;
		if (*e == '[' || *e == '(') {	/* Re[2]: */
			e++;
			while (isdigit((unsigned char)*e))
				e++;
			if (*e != ']' && *e != ')')
				continue;
			e++;
		}
		if (*e == ':')
			return (size_t)(e - s) + 1;
	}
	return 0;
}

char *
messageserver_mime_subject_key(const char *subject)
{
	struct strbuf *sb = strbuf_new(strlen(subject) + 1);
	size_t n;
	int space = 0;

	for (;;) {
		while (isspace((unsigned char)*subject))
			subject++;
		if ((n = strip_prefix(subject)) == 0)
			break;
		subject += n;
	}
	for (; *subject != '\0'; subject++) {
		if (isspace((unsigned char)*subject)) {
			space = 1;
			continue;
		}
		if (space && strbuf_len(sb) > 0)
			strbuf_putc(sb, ' ');
		space = 0;
		strbuf_putc(sb, *subject);
	}
	return strbuf_detach(sb, NULL);
}
