/* SPDX-License-Identifier: MIT */
/*
 * fuzz_outgoing.c - libFuzzer target for the members' copy of a post
 * (messageserver_outgoing.c), which edits the header block of bytes a
 * stranger sent.
 *
 * Whatever the input: the result exists, the body after the first blank
 * line comes out byte for byte, and the list's own headers are present.
 * The first input byte picks the options (Reply-To policy, From rewrite),
 * the rest is the message.  Seeds: tests/fuzz/outgoing/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "messageserver.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	g_mime_init();
	return 0;
}

/* body_of - the bytes after the first empty line (LF or CRLF ends). */
static const char *
body_of(const char *s, size_t len, size_t *blen)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] != '\n')
			continue;
		if (i + 1 < len && s[i + 1] == '\n') {
			*blen = len - (i + 2);
			return s + i + 2;
		}
		if (i + 2 < len && s[i + 1] == '\r' && s[i + 2] == '\n') {
			*blen = len - (i + 3);
			return s + i + 3;
		}
	}
	*blen = 0;
	return NULL;
}

/* starts_line - 1 if field begins s or a line of s. */
static int
starts_line(const char *s, size_t len, const char *field)
{
	size_t n = strlen(field);
	char *nl = malloc(n + 2);
	int found;

	if (nl == NULL)
		abort();
	nl[0] = '\n';
	memcpy(nl + 1, field, n + 1);
	found = (len >= n && memcmp(s, field, n) == 0) ||
	    memmem(s, len, nl, n + 1) != NULL;
	free(nl);
	return found;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const policies[] = { "group", "sender",
	    "group_and_sender", "moderators" };
	struct ms_outgoing o;
	const char *ib, *ob;
	size_t outlen, iblen, oblen;
	char *out;

	if (size < 1)
		return 0;
	memset(&o, 0, sizeof(o));
	o.raw = (const char *)data + 1;
	o.rawlen = size - 1;
	o.group = "fuzz";
	o.domain = "example.org";
	o.title = "Fuzz Group";
	o.subject_tag = (data[0] & 4) ? "" : "[FZ]";
	o.reply_to_policy = policies[data[0] & 3];
	o.subject = "a subject \xc3\xa9";
	o.from_addr = "poster@example.net";
	o.from_name = (data[0] & 8) ? "" : "Po \"Ster\"";
	o.public_url = "https://lists.example.org";
	o.number = 42;
	o.rewrite_from = (data[0] & 16) != 0;
	out = messageserver_outgoing(&o, &outlen);
	/* our fields start lines of their own */
	if (out == NULL || !starts_line(out, outlen,
	    "X-Loop: fuzz@example.org") || !starts_line(out, outlen,
	    "List-Id: "))
		abort();
	ib = body_of(o.raw, o.rawlen, &iblen);
	if (ib != NULL) {
		/* the input's body must end the output unchanged */
		ob = out + outlen - iblen;
		if (outlen < iblen || memcmp(ob, ib, iblen) != 0)
			abort();
	}
	free(out);
	return 0;
}
