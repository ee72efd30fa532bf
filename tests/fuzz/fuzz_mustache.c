/* SPDX-License-Identifier: MIT */
/*
 * fuzz_mustache.c - libFuzzer target for Mustache templates.
 *
 * Input: template, a NUL byte, then JSON data (anything else is an empty
 * object).  Partials: "self" is the template itself (recursion) and every
 * string member of the data is one more partial.  Properties, with and
 * without MUSTACHE_NOESCAPE:
 *   - compile and render never crash; every failure has a one-line
 *     reason;
 *   - a failed render leaves the buffer as it was, a good one adds at most
 *     MUSTACHE_OUTPUT_MAX bytes, and rendering again gives the same bytes.
 * Seeds: tests/fuzz/mustache/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mustache.h"
#include "strbuf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const char *tmpl, size_t tlen, const json_t *partials,
    const json_t *d, int flags)
{
	struct mustache *m;
	struct strbuf *a, *b;
	char err[256];
	int rc;

	err[0] = '\0';
	m = mustache_compile(tmpl, tlen, partials, flags, err, sizeof(err));
	if (m == NULL) {
		if (err[0] == '\0' || strchr(err, '\n') != NULL)
			abort();
		return;
	}
	a = strbuf_new(0);
	b = strbuf_new(0);
	strbuf_puts(a, "prefix");
	err[0] = '\0';
	rc = mustache_render(m, d, a, err, sizeof(err));
	if (rc == -1) {
		if (err[0] == '\0' || strchr(err, '\n') != NULL ||
		    strcmp(strbuf_str(a), "prefix") != 0)
			abort();
	} else if (rc != 0 || strbuf_len(a) - 6 > MUSTACHE_OUTPUT_MAX) {
		abort();
	} else {
		if (mustache_render(m, d, b, err, sizeof(err)) != 0 ||
		    strbuf_len(b) != strbuf_len(a) - 6 ||
		    memcmp(strbuf_str(b), strbuf_str(a) + 6,
		    strbuf_len(b)) != 0)
			abort();
	}
	strbuf_free(a);
	strbuf_free(b);
	mustache_free(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *tmpl = (const char *)data, *k;
	const uint8_t *nul = memchr(data, '\0', size);
	size_t tlen = nul ? (size_t)(nul - data) : size;
	json_t *d = NULL, *partials, *v;

	if (nul != NULL)
		d = json_loadb((const char *)nul + 1, size - tlen - 1,
		    JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (d == NULL)
		d = json_object();
	partials = json_object();
	if (json_is_object(d))
		json_object_foreach(d, k, v)
			if (json_is_string(v))
				json_object_set(partials, k, v);
	json_object_set_new(partials, "self", json_stringn(tmpl, tlen));
	check(tmpl, tlen, partials, d, 0);
	check(tmpl, tlen, partials, d, MUSTACHE_NOESCAPE);
	json_decref(partials);
	json_decref(d);
	return 0;
}
