/* SPDX-License-Identifier: MIT */
/*
 * messageserver_outgoing.c - the copy of an archived post that goes to the
 * members: the poster's bytes with the list's headers.
 *
 * Only the top-level header block is edited, textually, so the body (a
 * multipart/signed one included) reaches members byte for byte (a block
 * that ends at a line which is no field gets its missing blank line, as
 * messageserver_mime.c read it).  Removed:
 * trace and list headers another list or the poster put there (Return-
 * Path, Delivered-To, List-*, Archived-At, Sender, Precedence, X-Loop,
 * Errors-To), and the headers rewritten here.  Added once per message:
 * Subject with the group's subject_tag (e.g. "[demo]"; empty: none) in
 * front unless the subject already has it, List-Id, List-Post, List-Help,
 * List-Subscribe, List-Archive, Archived-At, Sender, Precedence: list,
 * X-Loop, Reply-To by group policy.  DMARC: when the poster's domain
 * publishes p=reject or p=quarantine (or the lookup failed, to be safe),
 * or the group says "always", From becomes "Name via Group"
 * <group@domain> and the poster goes to Reply-To.  The poster's DKIM
 * signatures are dropped when From or Subject changed, since they can no
 * longer verify; karl signs for the list.  Per-recipient headers
 * (List-Unsubscribe) are karl's.
 */
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "dmarc.h"
#include "log.h"
#include "messageserver.h"
#include "strbuf.h"
#include "xalloc.h"

/* Headers never passed on; those rewritten are dropped separately. */
static const char *const drop_always[] = {
	"Return-Path", "Delivered-To", "X-Original-To", "List-Id",
	"List-Post", "List-Help", "List-Subscribe", "List-Unsubscribe",
	"List-Unsubscribe-Post", "List-Archive", "List-Owner", "Archived-At",
	"Sender", "Precedence", "X-Loop", "Errors-To", NULL
};

/* field_is - 1 if the field at f (up to its colon) is named name. */
static int
field_is(const char *f, size_t flen, const char *name)
{
	size_t n = strlen(name);

	return flen > n && strncasecmp(f, name, n) == 0 &&
	    (f[n] == ':' || f[n] == ' ' || f[n] == '\t');
}

static int
in_list(const char *f, size_t flen, const char *const *names)
{
	for (; *names != NULL; names++)
		if (field_is(f, flen, *names))
			return 1;
	return 0;
}

/* header_end - offset of the end of the header block, and in *nl the
 * line end the message uses; *blank is 1 when a blank line ends it, 0
 * when the bytes end or a line that is no field does (the body starts
 * there, as messageserver_mime.c reads it: the copy gets a blank line). */
static size_t
header_end(const char *raw, size_t len, const char **nl, int *blank)
{
	const char *e;
	size_t i;

	*nl = "\r\n";
	*blank = 0;
	for (i = 0; i < len; i = (size_t)(e - raw) + 1) {
		if ((e = memchr(raw + i, '\n', len - i)) == NULL)
			e = raw + len;
		if (raw[i] == '\n' || (raw[i] == '\r' && i + 1 < len &&
		    raw[i + 1] == '\n')) {
			*blank = 1;
			return i;
		}
		/* a leading mbox "From " line does not end the block
		 * (GMime skips it when it parses) */
		if (!messageserver_field_line(raw + i, e) && (i > 0 || len < 5 ||
		    memcmp(raw, "From ", 5) != 0))
			return i;
		if (e < raw + len && (e == raw || e[-1] != '\r'))
			*nl = "\n";
	}
	return len;
}

/* put_header - "Name: value" folded by GMime, with the message's line ends. */
static void
put_header(struct strbuf *sb, const char *name, const char *value,
    const char *nl)
{
	char *line = xasprintf("%s: %s", name, value), *f, *p;

	f = g_mime_utils_unstructured_header_fold(NULL, NULL, line);
	free(line);
	/* GMime folds with "\n"; keep the message's own line ends */
	for (p = f; *p != '\0'; p++) {
		if (*p == '\n')
			strbuf_puts(sb, nl);
		else if (*p != '\r')
			strbuf_putc(sb, *p);
	}
	if (p == f || p[-1] != '\n')
		strbuf_puts(sb, nl);
	g_free(f);
}

/* mailbox - "name" <addr>, encoded as needed (allocated). */
static char *
mailbox(const char *name, const char *addr)
{
	InternetAddress *ia = internet_address_mailbox_new(name, addr);
	char *s = internet_address_to_string(ia, NULL, TRUE), *out;

	out = xstrdup(s);
	g_free(s);
	g_object_unref(ia);
	return out;
}

/* has_tag - 1 if subject already carries tag (replies do). */
static int
has_tag(const char *subject, const char *tag)
{
	return strcasestr(subject, tag) != NULL;
}

int
messageserver_dmarc_rewrite(const char *mode, const char *from_addr)
{
	enum dmarc_p r = DMARC_NONE;
	const char *at;

	if (strcmp(mode, "always") == 0)
		return 1;
	if (strcmp(mode, "never") == 0)
		return 0;
	if ((at = strrchr(from_addr, '@')) == NULL || at[1] == '\0')
		return 0;
	dmarc_policy(at + 1, &r);
	if (r == DMARC_TEMPFAIL) {
		log_info("messageserver: DMARC lookup for %s failed; "
		    "rewriting From to be safe", at + 1);
		return 1;
	}
	return r == DMARC_REJECT || r == DMARC_QUARANTINE;
}

/* put_reply_to - Reply-To by group policy (group, sender,
 * group_and_sender, moderators); the poster is always in it when From was
 * rewritten, else replies could not reach them. */
static void
put_reply_to(struct strbuf *sb, const struct ms_outgoing *o, int rewrite,
    const char *listaddr, const char *nl)
{
	const char *pol = o->reply_to_policy;
	struct strbuf *rt;
	char *poster;

	if (!rewrite && strcmp(pol, "sender") == 0)
		return;
	rt = strbuf_new(256);
	if (strcmp(pol, "moderators") == 0)
		strbuf_appendf(rt, "<%s+owner@%s>", o->group, o->domain);
	if (rewrite || strcmp(pol, "sender") == 0 ||
	    strcmp(pol, "group_and_sender") == 0) {
		poster = mailbox(o->from_name, o->from_addr);
		strbuf_appendf(rt, "%s%s", rt->len ? ", " : "", poster);
		free(poster);
	}
	if (strcmp(pol, "group") == 0 || strcmp(pol, "group_and_sender") == 0)
		strbuf_appendf(rt, "%s<%s>", rt->len ? ", " : "", listaddr);
	if (rt->len > 0)
		put_header(sb, "Reply-To", rt->buf, nl);
	strbuf_free(rt);
}

char *
messageserver_outgoing(const struct ms_outgoing *o, size_t *lenp)
{
	const char *raw = o->raw, *nl, *f, *e;
	size_t end, flen, len = o->rawlen;
	struct strbuf *sb = strbuf_new(len + 2048);
	char *tmp, *subject, *listaddr, *from;
	const char *tag = o->subject_tag;
	int blank, new_subject, rewrite = o->rewrite_from;
	/* with "sender" the poster's own From/Reply-To already answer */
	int own_reply_to = rewrite ||
	    strcmp(o->reply_to_policy, "sender") != 0;

	end = header_end(raw, len, &nl, &blank);
	new_subject = tag[0] != '\0' && !has_tag(o->subject, tag);
	listaddr = xasprintf("%s@%s", o->group, o->domain);

	/* keep the poster's fields, less the ones replaced below */
	for (f = raw; f < raw + end; f = e) {
		/* a field runs to the line end not followed by WSP */
		for (e = f; e < raw + end; e++)
			if (*e == '\n' && (e + 1 >= raw + end ||
			    (e[1] != ' ' && e[1] != '\t'))) {
				e++;
				break;
			}
		flen = (size_t)(e - f);
		if (in_list(f, flen, drop_always))
			continue;
		if (new_subject && field_is(f, flen, "Subject"))
			continue;
		if (rewrite && (field_is(f, flen, "From") ||
		    field_is(f, flen, "Reply-To")))
			continue;
		if (own_reply_to && field_is(f, flen, "Reply-To"))
			continue;
		if ((rewrite || new_subject) &&
		    field_is(f, flen, "DKIM-Signature"))
			continue;
		strbuf_append(sb, f, flen);
		if (f[flen - 1] != '\n')	/* the last field of a body-less
						   message */
			strbuf_puts(sb, nl);
	}

	if (new_subject) {
		subject = xasprintf("%s %s", tag, o->subject);
		tmp = g_mime_utils_header_encode_text(NULL, subject, "utf-8");
		put_header(sb, "Subject", tmp, nl);
		g_free(tmp);
		free(subject);
	}
	if (rewrite) {
		tmp = xasprintf("%s via %s", o->from_name[0] ? o->from_name :
		    o->from_addr, o->title[0] ? o->title : o->group);
		from = mailbox(tmp, listaddr);
		put_header(sb, "From", from, nl);
		free(from);
		free(tmp);
	}
	put_reply_to(sb, o, rewrite, listaddr, nl);
	tmp = xasprintf("%s <%s.%s>", o->title[0] ? o->title : o->group,
	    o->group, o->domain);
	put_header(sb, "List-Id", tmp, nl);
	free(tmp);
	tmp = xasprintf("<mailto:%s>", listaddr);
	put_header(sb, "List-Post", tmp, nl);
	free(tmp);
	tmp = xasprintf("<mailto:%s+help@%s>", o->group, o->domain);
	put_header(sb, "List-Help", tmp, nl);
	free(tmp);
	tmp = xasprintf("<mailto:%s+subscribe@%s>", o->group, o->domain);
	put_header(sb, "List-Subscribe", tmp, nl);
	free(tmp);
	tmp = xasprintf("<%s/g/%s>", o->public_url, o->group);
	put_header(sb, "List-Archive", tmp, nl);
	free(tmp);
	tmp = xasprintf("<%s/g/%s/message/%lld>", o->public_url, o->group,
	    o->number);
	put_header(sb, "Archived-At", tmp, nl);
	free(tmp);
	tmp = xasprintf("<%s+owner@%s>", o->group, o->domain);
	put_header(sb, "Sender", tmp, nl);
	free(tmp);
	put_header(sb, "Precedence", "list", nl);
	put_header(sb, "X-Loop", listaddr, nl);
	free(listaddr);

	if (!blank)		/* no body, or one the poster did not set off */
		strbuf_puts(sb, nl);
	if (end < len)
		strbuf_append(sb, raw + end, len - end);
	return strbuf_detach(sb, lenp);
}
