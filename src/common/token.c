/* SPDX-License-Identifier: MIT */
/*
 * token.c - HMAC-SHA256 signed tokens and key derivation (libsodium).
 *
 * Format: b64url(payload) "." expires "." b64url(HMAC(key, purpose "\n"
 * payload "\n" expires)).  The purpose is under the MAC but not in the
 * token, so a token minted for one purpose fails verification for another.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "log.h"
#include "strbuf.h"
#include "token.h"

static void
token_init_sodium(void)
{
	if (sodium_init() < 0)
		panic("sodium_init failed");
}

void
token_derive(const char *secret, size_t secretlen, const char *label,
    unsigned char key[TOKEN_KEY_LEN])
{
	crypto_auth_hmacsha256_state st;

	token_init_sodium();
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret,
	    secretlen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)label,
	    strlen(label));
	crypto_auth_hmacsha256_final(&st, key);
}

void
token_derive_hex(const char *secret, size_t secretlen, const char *label,
    char out[2 * TOKEN_KEY_LEN + 1])
{
	unsigned char key[TOKEN_KEY_LEN];

	token_derive(secret, secretlen, label, key);
	sodium_bin2hex(out, 2 * TOKEN_KEY_LEN + 1, key, sizeof(key));
	sodium_memzero(key, sizeof(key));
}

char *
token_b64url_encode(const unsigned char *data, size_t len)
{
	size_t n = sodium_base64_ENCODED_LEN(len,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *s = xmalloc(n);

	sodium_bin2base64(s, n, data, len,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return s;
}

unsigned char *
token_b64url_decode(const char *s, size_t slen, size_t *lenp)
{
	unsigned char *out = xmalloc(slen + 1);
	const char *end;
	size_t len;

	token_init_sodium();
	if (sodium_base642bin(out, slen, s, slen, NULL, &len, &end,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    end != s + slen) {
		free(out);
		return NULL;
	}
	out[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return out;
}

static void
token_mac(const unsigned char key[TOKEN_KEY_LEN], const char *purpose,
    const unsigned char *payload, size_t len, const char *expires,
    unsigned char mac[crypto_auth_hmacsha256_BYTES])
{
	crypto_auth_hmacsha256_state st;

	crypto_auth_hmacsha256_init(&st, key, TOKEN_KEY_LEN);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)purpose,
	    strlen(purpose));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)"\n", 1);
	crypto_auth_hmacsha256_update(&st, payload, len);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)"\n", 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)expires,
	    strlen(expires));
	crypto_auth_hmacsha256_final(&st, mac);
}

char *
token_sign(const unsigned char key[TOKEN_KEY_LEN], const char *purpose,
    const char *payload, size_t len, time_t expires)
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char exp[24], *p64, *m64, *tok;

	if (len > TOKEN_MAX_PAYLOAD)
		return NULL;
	token_init_sodium();
	snprintf(exp, sizeof(exp), "%lld", (long long)expires);
	token_mac(key, purpose, (const unsigned char *)payload, len, exp, mac);
	p64 = token_b64url_encode((const unsigned char *)payload, len);
	m64 = token_b64url_encode(mac, sizeof(mac));
	tok = xasprintf("%s.%s.%s", p64, exp, m64);
	free(p64);
	free(m64);
	return tok;
}

int
token_verify(const unsigned char key[TOKEN_KEY_LEN], const char *purpose,
    const char *token, time_t now, char **payload, size_t *lenp)
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES], *got = NULL;
	unsigned char *data = NULL;
	const char *d1, *d2;
	char exp[24], *end;
	size_t plen, glen, elen;
	long long e;
	int rc = TOKEN_BAD;

	token_init_sodium();
	if (strlen(token) > 4 * TOKEN_MAX_PAYLOAD ||
	    (d1 = strchr(token, '.')) == NULL ||
	    (d2 = strchr(d1 + 1, '.')) == NULL || strchr(d2 + 1, '.'))
		return TOKEN_BAD;
	elen = (size_t)(d2 - d1 - 1);
	if (elen == 0 || elen >= sizeof(exp))
		return TOKEN_BAD;
	memcpy(exp, d1 + 1, elen);
	exp[elen] = '\0';
	e = strtoll(exp, &end, 10);
	if (*end != '\0' || e < 0 || (exp[0] == '0' && elen > 1))
		return TOKEN_BAD;
	if ((data = token_b64url_decode(token, (size_t)(d1 - token),
	    &plen)) == NULL)
		return TOKEN_BAD;
	if ((got = token_b64url_decode(d2 + 1, strlen(d2 + 1), &glen)) ==
	    NULL || glen != sizeof(mac))
		goto out;
	token_mac(key, purpose, data, plen, exp, mac);
	if (sodium_memcmp(mac, got, sizeof(mac)) != 0)
		goto out;
	if (e != 0 && (long long)now >= e) {
		rc = TOKEN_EXPIRED;
		goto out;
	}
	rc = TOKEN_OK;
	if (payload != NULL) {
		*payload = (char *)data;
		data = NULL;
	}
	if (lenp != NULL)
		*lenp = plen;
out:
	free(got);
	free(data);
	return rc;
}

/* short_mac - the first TOKEN_SHORT_MAC bytes of the token MAC of
 * payload (expires "0"), in lowercase base32 (RFC 4648 alphabet, lower
 * case): TOKEN_SHORT_MAC_CHARS characters. */
static void
short_mac(const unsigned char key[TOKEN_KEY_LEN], const char *purpose,
    const char *payload, size_t len, char out[TOKEN_SHORT_MAC_CHARS + 1])
{
	static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	unsigned bits = 0, acc = 0;
	size_t i, o = 0;

	token_mac(key, purpose, (const unsigned char *)payload, len, "0", mac);
	for (i = 0; i < TOKEN_SHORT_MAC; i++) {
		acc = (acc << 8) | mac[i];
		bits += 8;
		while (bits >= 5) {
			out[o++] = b32[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	out[o] = '\0';
}

/* short_payload_ok - lowercase letters, digits, '.', '-', at most
 * TOKEN_SHORT_PAYLOAD_MAX: safe in any local part, whatever the case. */
static int
short_payload_ok(const char *p, size_t len)
{
	return len > 0 && len <= TOKEN_SHORT_PAYLOAD_MAX && strspn(p,
	    "abcdefghijklmnopqrstuvwxyz0123456789.-") == len;
}

char *
token_short_sign(const unsigned char key[TOKEN_KEY_LEN], const char *purpose,
    const char *payload)
{
	char mac[TOKEN_SHORT_MAC_CHARS + 1];
	size_t len = strlen(payload);

	if (!short_payload_ok(payload, len))
		return NULL;
	token_init_sodium();
	short_mac(key, purpose, payload, len, mac);
	return xasprintf("%s.%s", payload, mac);
}

int
token_short_verify(const unsigned char key[TOKEN_KEY_LEN],
    const char *purpose, const char *token, char *payload, size_t paylen)
{
	char want[TOKEN_SHORT_MAC_CHARS + 1], got[TOKEN_SHORT_MAC_CHARS + 1];
	char p[TOKEN_SHORT_PAYLOAD_MAX + 1];
	const char *dot = strrchr(token, '.');
	size_t len, i;

	if (dot == NULL || strlen(dot + 1) != TOKEN_SHORT_MAC_CHARS)
		return TOKEN_BAD;
	len = (size_t)(dot - token);
	if (len == 0 || len > TOKEN_SHORT_PAYLOAD_MAX)
		return TOKEN_BAD;
	/* MTAs may change the case of a local part: compare in lower case */
	for (i = 0; i < len; i++)
		p[i] = (char)(token[i] >= 'A' && token[i] <= 'Z' ?
		    token[i] - 'A' + 'a' : token[i]);
	p[len] = '\0';
	for (i = 0; i < TOKEN_SHORT_MAC_CHARS; i++)
		got[i] = (char)(dot[1 + i] >= 'A' && dot[1 + i] <= 'Z' ?
		    dot[1 + i] - 'A' + 'a' : dot[1 + i]);
	got[i] = '\0';
	if (!short_payload_ok(p, len))
		return TOKEN_BAD;
	token_init_sodium();
	short_mac(key, purpose, p, len, want);
	if (sodium_memcmp(want, got, TOKEN_SHORT_MAC_CHARS) != 0)
		return TOKEN_BAD;
	if (payload != NULL && strlcpy_chk(payload, p, paylen) == -1)
		return TOKEN_BAD;
	return TOKEN_OK;
}

void
token_random_id(char *out, size_t n)
{
	unsigned char buf[64];

	if (n > sizeof(buf))
		n = sizeof(buf);
	token_init_sodium();
	randombytes_buf(buf, n);
	sodium_bin2hex(out, 2 * n + 1, buf, n);
}
