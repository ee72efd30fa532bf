/* SPDX-License-Identifier: MIT */
/*
 * fuzz_smtp_data.c - libFuzzer target for the DATA state machine
 * (smtp_data.c), the SMTP smuggling defence.
 *
 * The first byte is the size bound (0..255 * 16); the rest is fed split
 * after each LF, as smtpd does.  Properties: the data ends only right
 * after "<CRLF>.<CRLF>" (or ".<CRLF>" as the very first line); when no
 * bare CR/LF was seen and the bound held, the message has no bare CR or
 * LF and is exactly the bytes consumed, less the final ".<CRLF>" and the
 * first dot of each line.  Seeds: tests/fuzz/smtp_data/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_data.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* unstuffed_equal - msg is in[0..n) without its final ".\r\n" and with
 * the first dot of every line removed? */
static int
unstuffed_equal(const char *msg, size_t mlen, const char *in, size_t n)
{
	size_t i, j = 0;
	int bol = 1;

	if (n < 3)
		return 0;
	for (i = 0; i < n - 3; i++) {
		if (bol && in[i] == '.') {
			bol = 0;
			continue;
		}
		if (j >= mlen || msg[j++] != in[i])
			return 0;
		bol = in[i] == '\n';
	}
	return j == mlen;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_data d;
	const char *in;
	size_t n, off = 0, end = 0, i;
	const char *m;

	if (size < 1)
		return 0;
	in = (const char *)data + 1;
	n = size - 1;
	smtp_data_begin(&d, (size_t)data[0] * 16);
	while (off < n) {
		const char *lf = memchr(in + off, '\n', n - off);
		size_t len = lf ? (size_t)(lf - (in + off)) + 1 : n - off;

		if (smtp_data_feed(&d, in + off, len, lf != NULL)) {
			end = off + len;
			break;
		}
		off += len;
	}
	if (end != 0) {
		if (end < 3 || memcmp(in + end - 3, ".\r\n", 3) != 0)
			abort();
		if (end > 3 && (end < 5 || memcmp(in + end - 5, "\r\n", 2)))
			abort();
		if (!d.bad_eol && !d.too_big) {
			m = strbuf_str(d.msg);
			for (i = 0; i < strbuf_len(d.msg); i++) {
				if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r'))
					abort();
				if (m[i] == '\r' && (i + 1 == strbuf_len(d.msg)
				    || m[i + 1] != '\n'))
					abort();
			}
			if (!unstuffed_equal(m, strbuf_len(d.msg), in, end))
				abort();
		}
	}
	if (d.too_big && strbuf_len(d.msg) != 0)
		abort();
	if (!d.too_big && strbuf_len(d.msg) > d.max)
		abort();
	smtp_data_end(&d);
	return 0;
}
