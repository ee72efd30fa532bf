/* SPDX-License-Identifier: MIT */
/*
 * fuzz_dmarc.c - libFuzzer target for the DMARC record parser.
 *
 * The input as a string goes to dmarc_parse, which must never crash and,
 * when it accepts, must leave policies in range, pct in 0..100, and agree
 * with dmarc_is_dmarc (nothing that is not a DMARC record is accepted).
 * Parsing is deterministic: twice gives the same record.  The input as a
 * domain, when dns_name_valid takes it, gives an organizational domain
 * that is a non-empty suffix of it starting at a label.  No DNS is asked.
 * Seeds: tests/fuzz/dmarc/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc.h"
#include "dns.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
policy_ok(enum dmarc_p p)
{
	return p == DMARC_NONE || p == DMARC_QUARANTINE || p == DMARC_REJECT;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dmarc_record a, b;
	const char *org;
	char *s = malloc(size + 1);
	int rc;

	memcpy(s, data, size);
	s[size] = '\0';
	rc = dmarc_parse(s, &a);
	if (rc != 0 && rc != -1)
		abort();
	if (rc == 0) {
		if (!policy_ok(a.p) || !policy_ok(a.sp) || a.pct < 0 ||
		    a.pct > 100 || !dmarc_is_dmarc(s) ||
		    strlen(s) > DMARC_RECORD_MAX)
			abort();
		if (dmarc_parse(s, &b) != 0 || memcmp(&a, &b, sizeof(a)) != 0)
			abort();
	}
	if (dns_name_valid(s) && s[strlen(s) - 1] != '.') {
		org = dmarc_org_domain(s);
		if (*org == '\0' || org < s || org > s + strlen(s) ||
		    strcmp(org, s + strlen(s) - strlen(org)) != 0 ||
		    (org != s && org[-1] != '.'))
			abort();
	}
	free(s);
	return 0;
}
