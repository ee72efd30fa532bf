/* SPDX-License-Identifier: MIT */
/*
 * mime_footer.h - add a per-receiver footer to a message, the MIME way
 * (GMime): at the end of text/plain parts, before </body> of text/html
 * parts (both parts of multipart/alternative), and as a new text/plain
 * part after the content where the body cannot be edited (multipart/
 * signed stays verifiable, other non-text bodies stay intact).  Charsets
 * and transfer encodings stay valid: a part that gets the footer is
 * decoded, converted to UTF-8 (the footer's charset) and written again as
 * quoted-printable; everything else is copied byte for byte.  See
 * docs/mime_footer.md.
 *
 * The message is analysed once per job (mime_footer_plan) and the footer
 * spliced in per receiver (mime_footer_apply), since karl does this for
 * every receiver of every post.
 */
#ifndef MIME_FOOTER_H
#define MIME_FOOTER_H

#include <stddef.h>

struct mime_footer_plan;

/* mime_footer_plan - analyse msg (len bytes, CRLF or LF lines; copied,
 * msg may go afterwards); NULL with a reason in err when it is not a
 * message GMime can parse.  Needs g_mime_init() done once. */
struct mime_footer_plan *mime_footer_plan(const char *msg, size_t len,
	    char *err, size_t errlen);
/* mime_footer_apply - the message with text (for text/plain parts and a
 * new part) and html (for text/html parts; NULL: text, HTML-escaped, in
 * a <pre>) added, CRLF lines (allocated; *outlen set).  Thread-safe on
 * one plan. */
char	*mime_footer_apply(const struct mime_footer_plan *, const char *text,
	    const char *html, size_t *outlen);
/* mime_footer_wants_html - whether the message has a text/html part
 * for the html footer (else mime_footer_apply never uses html). */
int	 mime_footer_wants_html(const struct mime_footer_plan *);
/* mime_footer_prefix - the bytes every mime_footer_apply output with a
 * non-empty text begins with (borrowed from the plan; *lenp set): the
 * message up to its first footer.  For work done once per job, such as
 * the hash state of a DKIM body (dkim_body_cache_new). */
const char *mime_footer_prefix(const struct mime_footer_plan *,
	    size_t *lenp);
/* mime_footer_plan_free - accepts NULL, returns NULL. */
struct mime_footer_plan *mime_footer_plan_free(struct mime_footer_plan *);

#endif
