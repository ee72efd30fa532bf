/* SPDX-License-Identifier: MIT */
/*
 * fuzz_token.c - libFuzzer target for token verification.
 *
 * Two properties with a fixed key:
 *   - token_verify on the input as a string never crashes and never
 *     accepts it (forging a MAC is what it exists to prevent), and never
 *     hands back a payload when it refuses;
 *   - the input as a payload signs and verifies back to the same bytes; the
 *     token is refused for another purpose, after it expires, and with any
 *     one character changed.
 * Seeds: tests/fuzz/token/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char key[TOKEN_KEY_LEN] = {
	0x6b, 0x65, 0x79, 0x2d, 0x66, 0x6f, 0x72, 0x2d,
	0x66, 0x75, 0x7a, 0x7a, 0x69, 0x6e, 0x67, 0x2d,
	0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
	0x38, 0x39, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66,
};

static void
check_verify_refuses(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *payload = NULL;
	size_t len = 12345;
	int rc;

	memcpy(s, data, size);
	s[size] = '\0';
	rc = token_verify(key, "fuzz", s, 1700000000, &payload, &len);
	if (rc != TOKEN_BAD || payload != NULL || len != 12345)
		abort();
	free(s);
}

static void
check_roundtrip(const uint8_t *data, size_t size)
{
	static const char alpha[] = "AQgw-_.09z";
	char *tok, *payload = NULL;
	time_t expires = 0;
	size_t len = 0, i;
	int rc;

	if (size >= 4)
		expires = (time_t)((uint32_t)data[0] << 24 |
		    (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 |
		    data[3]);
	tok = token_sign(key, "fuzz", (const char *)data, size, expires);
	if (size > TOKEN_MAX_PAYLOAD) {
		if (tok != NULL)
			abort();
		return;
	}
	if (tok == NULL)
		abort();
	rc = token_verify(key, "fuzz", tok, expires ? expires - 1 : 0,
	    &payload, &len);
	if (rc != TOKEN_OK || len != size || memcmp(payload, data, size) != 0)
		abort();
	free(payload);
	if (token_verify(key, "fuzz2", tok, 0, NULL, NULL) != TOKEN_BAD)
		abort();
	if (expires != 0 &&
	    token_verify(key, "fuzz", tok, expires, NULL, NULL) !=
	    TOKEN_EXPIRED)
		abort();
	/* one changed character, at a place the input chooses */
	i = size > 0 ? data[size - 1] % strlen(tok) : 0;
	tok[i] = alpha[(strchr(alpha, tok[i]) ? strchr(alpha, tok[i]) -
	    alpha + 1 : 0) % (sizeof(alpha) - 1)];
	if (token_verify(key, "fuzz", tok, 0, NULL, NULL) != TOKEN_BAD)
		abort();
	free(tok);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_verify_refuses(data, size);
	check_roundtrip(data, size);
	return 0;
}
