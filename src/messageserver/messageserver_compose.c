/* SPDX-License-Identifier: MIT */
/*
 * messageserver_compose.c - build an RFC 5322 message from fields, with
 * GMime: the posts that come from the web and the crawlers, and the
 * notices messageserver sends itself.  Headers are encoded (RFC 2047) and
 * folded by GMime; the text goes as UTF-8, quoted-printable or base64 as
 * GMime sees fit.  The result has CRLF line ends, as on the wire.
 */
#include <string.h>
#include <time.h>

#include <gmime/gmime.h>

#include "messageserver.h"
#include "token.h"
#include "xalloc.h"

/* text_part - a text/<subtype> part holding UTF-8 text. */
static GMimeTextPart *
text_part(const char *subtype, const char *text)
{
	GMimeTextPart *t = g_mime_text_part_new_with_subtype(subtype);

	g_mime_text_part_set_text(t, text);
	g_mime_part_set_content_encoding(GMIME_PART(t),
	    g_mime_part_get_best_content_encoding(GMIME_PART(t),
	    GMIME_ENCODING_CONSTRAINT_7BIT));
	return t;
}

char *
messageserver_compose(const struct ms_compose *c, size_t *lenp)
{
	GMimeMessage *m = g_mime_message_new(TRUE);
	GMimeMultipart *alt;
	GMimeFormatOptions *fo;
	GDateTime *now;
	char rnd[33], *mid, *s, *out;
	size_t i, len;

	g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_FROM,
	    c->from_name ? c->from_name : "", c->from_addr);
	for (i = 0; i < c->nto; i++)
		g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_TO, "",
		    c->to[i]);
	if (c->reply_to != NULL)
		g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_REPLY_TO, "",
		    c->reply_to);
	g_mime_message_set_subject(m, c->subject ? c->subject : "", "utf-8");
	now = g_date_time_new_now_utc();
	g_mime_message_set_date(m, now);
	g_date_time_unref(now);
	if (c->message_id != NULL)
		g_mime_message_set_message_id(m, c->message_id);
	else {
		token_random_id(rnd, 16);
		mid = xasprintf("%s@%s", rnd, c->msgid_domain);
		g_mime_message_set_message_id(m, mid);
		free(mid);
	}
	if (c->in_reply_to != NULL && c->in_reply_to[0] != '\0') {
		mid = xasprintf("<%s>", c->in_reply_to);
		g_mime_object_set_header(GMIME_OBJECT(m), "In-Reply-To", mid,
		    NULL);
		g_mime_object_set_header(GMIME_OBJECT(m), "References", mid,
		    NULL);
		free(mid);
	}
	for (i = 0; i < c->nheaders; i++)
		g_mime_object_set_header(GMIME_OBJECT(m), c->headers[i].name,
		    c->headers[i].value, "utf-8");

	if (c->html != NULL && c->html[0] != '\0') {
		alt = g_mime_multipart_new_with_subtype("alternative");
		g_mime_multipart_add(alt, GMIME_OBJECT(text_part("plain",
		    c->text ? c->text : "")));
		g_mime_multipart_add(alt, GMIME_OBJECT(text_part("html",
		    c->html)));
		/* the multipart holds its own references now */
		g_object_unref(g_mime_multipart_get_part(alt, 0));
		g_object_unref(g_mime_multipart_get_part(alt, 1));
		g_mime_message_set_mime_part(m, GMIME_OBJECT(alt));
		g_object_unref(alt);
	} else {
		GMimeTextPart *t = text_part("plain", c->text ? c->text : "");

		g_mime_message_set_mime_part(m, GMIME_OBJECT(t));
		g_object_unref(t);
	}

	fo = g_mime_format_options_new();
	g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
	s = g_mime_object_to_string(GMIME_OBJECT(m), fo);
	g_mime_format_options_free(fo);
	g_object_unref(m);
	len = strlen(s);
	out = xmalloc(len + 1);
	memcpy(out, s, len + 1);
	g_free(s);
	if (lenp != NULL)
		*lenp = len;
	return out;
}
