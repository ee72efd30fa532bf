/* SPDX-License-Identifier: MIT */
/*
 * fuzz_mime.c - libFuzzer target for messageserver's inbound MIME parser.
 *
 * The input is a raw message as smtpd hands it over.  messageserver_mime.c
 * promises that a parse which succeeds yields only valid UTF-8 strings
 * without NUL (they go to PostgreSQL text columns and to JSON), the
 * required ones present; anything else aborts.  Seeds: tests/fuzz/mime/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "messageserver.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* check_utf8 - s is NULL (when allowed) or valid UTF-8 of at most max
 * bytes; strlen stops at the first NUL, so an embedded NUL cannot be
 * seen here and is what the length checks of attachments are for. */
static void
check_utf8(const char *s, int nullable)
{
	const unsigned char *p;
	unsigned int c, n, i;

	if (s == NULL) {
		if (!nullable)
			abort();
		return;
	}
	for (p = (const unsigned char *)s; *p != '\0'; p += n) {
		c = *p;
		if (c < 0x80) {
			n = 1;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 2;
		else if (c >= 0xe0 && c <= 0xef)
			n = 3;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 4;
		else
			abort();
		for (i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				abort();
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) ||
		    (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
			abort();
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	messageserver_mime_init();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ms_parsed p;
	size_t i;

	memset(&p, 0, sizeof(p));
	if (messageserver_mime_parse(data, size, "fallback@example.org",
	    "example.org", &p) != 0)
		return 0;
	check_utf8(p.message_id, 0);
	if (p.message_id[0] == '\0')
		abort();
	check_utf8(p.subject, 0);
	check_utf8(p.from_name, 1);
	check_utf8(p.from_addr, 0);
	check_utf8(p.sent_at, 1);
	check_utf8(p.in_reply_to, 1);
	check_utf8(p.body_text, 0);
	check_utf8(p.body_html, 1);
	if (p.nrefs > MS_REFS_MAX || (p.nrefs > 0 && p.refs == NULL))
		abort();
	for (i = 0; i < p.nrefs; i++)
		check_utf8(p.refs[i], 0);
	if (p.natt > MS_ATTACH_MAX || (p.natt > 0 && p.att == NULL))
		abort();
	for (i = 0; i < p.natt; i++) {
		check_utf8(p.att[i].filename, 0);
		check_utf8(p.att[i].content_type, 0);
		check_utf8(p.att[i].content_id, 1);
		if (p.att[i].len > 0 && p.att[i].data == NULL)
			abort();
		if (strlen(p.att[i].sha256) != 64)
			abort();
	}
	messageserver_mime_free(&p);
	return 0;
}
