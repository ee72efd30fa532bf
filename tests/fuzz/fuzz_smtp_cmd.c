/* SPDX-License-Identifier: MIT */
/*
 * fuzz_smtp_cmd.c - libFuzzer target for the MAIL/RCPT argument parser
 * (smtp_parse.c).
 *
 * The first byte picks MAIL or RCPT (and, for RCPT, SMTPUTF8); the rest is
 * the argument text, cut at a NUL as smtpd does.  Properties: no crash; on
 * success the address is within SMTP_ADDR_MAX and passes smtp_addr_valid
 * (or is empty / postmaster where allowed); on failure the code is one of
 * 501, 553, 555 and the reply text starts with an enhanced status code.
 * Seeds: tests/fuzz/smtp_cmd/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp_parse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_fail(int rc, const char *err)
{
	if (rc != 501 && rc != 553 && rc != 555)
		abort();
	if (strlen(err) < 6 || (err[0] != '4' && err[0] != '5') ||
	    err[1] != '.')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s, err[SMTP_PARSE_ERR_MAX];
	int rc;

	if (size < 1 || size > 2048)
		return 0;
	s = malloc(size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	if (data[0] & 1) {
		struct smtp_mail m;

		rc = smtp_parse_mail(s, &m, err, sizeof(err));
		if (rc != 0)
			check_fail(rc, err);
		else if (strlen(m.addr) > SMTP_ADDR_MAX ||
		    (m.addr[0] != '\0' && !smtp_addr_valid(m.addr,
		    m.smtputf8)))
			abort();
	} else {
		struct smtp_rcpt r;
		int utf8 = (data[0] & 2) != 0;

		rc = smtp_parse_rcpt(s, utf8, &r, err, sizeof(err));
		if (rc != 0)
			check_fail(rc, err);
		else if (strlen(r.addr) > SMTP_ADDR_MAX ||
		    (strcasecmp(r.addr, "postmaster") != 0 &&
		    !smtp_addr_valid(r.addr, utf8)))
			abort();
	}
	free(s);
	return 0;
}
