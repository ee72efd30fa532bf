/* SPDX-License-Identifier: MIT */
/*
 * fuzz_dsn.c - libFuzzer target for the bounce parser (src/common/dsn.c).
 *
 * The input is a raw message as it reaches the bounce address.  Whatever
 * it is, dsn_parse must return the number of entries it filled, never
 * more than DSN_RCPT_MAX, with every string NUL-terminated inside its
 * field and free of control characters, every entry's kind set and its
 * address holding an '@'; dsn_counts must accept every status it gives.
 * A second parse of the same bytes must give the same result.  Anything
 * else aborts.  Seeds: tests/fuzz/dsn/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dsn.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* check_str - s is NUL-terminated within size bytes and has no control
 * characters. */
static void
check_str(const char *s, size_t size)
{
	const char *nul = memchr(s, '\0', size);
	const char *p;

	if (nul == NULL)
		abort();
	for (p = s; p < nul; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dsn_result res, again;
	size_t n, i;

	n = dsn_parse((const char *)data, size, &res);
	if (n != res.nrcpt || n > DSN_RCPT_MAX)
		abort();
	check_str(res.reporting_mta, sizeof(res.reporting_mta));
	check_str(res.original_message_id, sizeof(res.original_message_id));
	for (i = 0; i < n; i++) {
		const struct dsn_rcpt *r = &res.rcpt[i];

		if (r->kind != DSN_HARD && r->kind != DSN_SOFT)
			abort();
		check_str(r->addr, sizeof(r->addr));
		check_str(r->status, sizeof(r->status));
		check_str(r->action, sizeof(r->action));
		check_str(r->diagnostic, sizeof(r->diagnostic));
		check_str(r->remote_mta, sizeof(r->remote_mta));
		if (strchr(r->addr, '@') == NULL)
			abort();
		(void)dsn_counts(r->status);
	}
	if (dsn_parse((const char *)data, size, &again) != n ||
	    memcmp(&res, &again, sizeof(res)) != 0)
		abort();
	return 0;
}
