/* SPDX-License-Identifier: MIT */
/*
 * token.h - HMAC-SHA256 tokens (unsubscribe links, VERP addresses, email
 * confirmations, CSRF) and key derivation from the one system secret.
 *
 * A token is  base64url(payload) "." expires "." base64url(mac)  where mac =
 * HMAC-SHA256(key, purpose "\n" payload "\n" expires).  The purpose binds a
 * token to one use: an unsubscribe token is not a CSRF token.  expires is
 * unix seconds, 0 for never.  Verification is constant-time.
 */
#ifndef TOKEN_H
#define TOKEN_H

#include <stddef.h>
#include <time.h>

#include "bounds.h"

/* token_derive - key = HMAC-SHA256(secret, label): one sub-key per use. */
void	 token_derive(const char *secret, size_t secretlen, const char *label,
	    unsigned char key[TOKEN_KEY_LEN]);
/* token_derive_hex - the derived key as 64 hex chars + NUL (shared API
 * secret between daemons). */
void	 token_derive_hex(const char *secret, size_t secretlen,
	    const char *label, char out[2 * TOKEN_KEY_LEN + 1]);

/* token_sign - returns allocated token, or NULL if payload is longer than
 * TOKEN_MAX_PAYLOAD. */
char	*token_sign(const unsigned char key[TOKEN_KEY_LEN], const char *purpose,
	    const char *payload, size_t len, time_t expires);

#define TOKEN_OK	0
#define TOKEN_BAD	-1	/* malformed or forged */
#define TOKEN_EXPIRED	-2	/* genuine but expired */

/* token_verify - checks token at time now; on TOKEN_OK stores the payload
 * (allocated, caller frees, NUL-terminated) in *payload if not NULL. */
int	 token_verify(const unsigned char key[TOKEN_KEY_LEN],
	    const char *purpose, const char *token, time_t now,
	    char **payload, size_t *lenp);

/*
 * Short tokens, for VERP addresses, where a local part should stay within
 * RFC 5321's 64 octets and may have its case changed on the way back:
 * payload "." mac, the payload in lowercase letters, digits, '.' and '-'
 * (at most TOKEN_SHORT_PAYLOAD_MAX), the mac the first 80 bits of the
 * token MAC (expires 0) in lowercase base32.  Verification ignores case.
 */
#define TOKEN_SHORT_PAYLOAD_MAX	32
#define TOKEN_SHORT_MAC		10	/* bytes of MAC kept */
#define TOKEN_SHORT_MAC_CHARS	16	/* their base32 */

/* token_short_sign - allocated, or NULL when payload is not allowed. */
char	*token_short_sign(const unsigned char key[TOKEN_KEY_LEN],
	    const char *purpose, const char *payload);
/* token_short_verify - TOKEN_OK with the payload (lower case) copied to
 * payload (paylen bytes), or TOKEN_BAD. */
int	 token_short_verify(const unsigned char key[TOKEN_KEY_LEN],
	    const char *purpose, const char *token, char *payload,
	    size_t paylen);

/* token_b64url_encode - returns allocated, unpadded base64url of data. */
char	*token_b64url_encode(const unsigned char *data, size_t len);
/* token_b64url_decode - returns allocated bytes (NUL appended) or NULL. */
unsigned char *token_b64url_decode(const char *s, size_t slen, size_t *lenp);

/* token_random_id - n random bytes as lowercase hex into out (2n+1). */
void	 token_random_id(char *out, size_t n);

#endif
