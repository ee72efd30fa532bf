/* SPDX-License-Identifier: MIT */
/*
 * fuzz_footer.c - libFuzzer target for the per-receiver footer splicer
 * (src/common/mime_footer.c).
 *
 * The input is a raw message as karl gets it.  Whenever mime_footer_plan
 * accepts it, apply must give a message whose every line ends in CRLF and
 * that GMime parses again, with a footer (UTF-8, a long line, html
 * special characters), an html footer left to be derived, and an empty
 * one.  Anything else aborts.  Seeds: tests/fuzz/footer/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "mime_footer.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char long_line[1200];

/* check - out is CRLF lines and a message GMime can parse. */
static void
check(const char *out, size_t n)
{
	GMimeStream *st;
	GMimeParser *p;
	GMimeMessage *m;
	size_t i;

	if (out == NULL || n < 2 || out[n - 2] != '\r' || out[n - 1] != '\n')
		abort();
	for (i = 0; i < n; i++) {
		if (out[i] == '\r' && (i + 1 == n || out[i + 1] != '\n'))
			abort();
		if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
			abort();
	}
	st = g_mime_stream_mem_new_with_buffer(out, n);
	p = g_mime_parser_new_with_stream(st);
	if ((m = g_mime_parser_construct_message(p, NULL)) == NULL)
		abort();
	g_object_unref(m);
	g_object_unref(p);
	g_object_unref(st);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	g_mime_init();
	memset(long_line, 'x', sizeof(long_line) - 1);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_footer_plan *pl;
	char err[128], *out;
	size_t n;

	if ((pl = mime_footer_plan((const char *)data, size, err,
	    sizeof(err))) == NULL)
		return 0;
	out = mime_footer_apply(pl, "-- \nUnsubscribe: <https://x/u/1> "
	    "caf\xc3\xa9 = \t", "<p>unsub</p>", &n);
	check(out, n);
	free(out);
	out = mime_footer_apply(pl, long_line, NULL, &n);
	check(out, n);
	free(out);
	out = mime_footer_apply(pl, "", "", &n);
	check(out, n);
	free(out);
	mime_footer_plan_free(pl);
	return 0;
}
