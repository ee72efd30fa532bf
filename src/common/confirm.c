/* SPDX-License-Identifier: MIT */
/*
 * confirm.c - the tokens of emailed confirmation requests (confirm.h).
 *
 * Signed with a key derived from cfg.secret for "confirm" (token.h's short
 * form: case-insensitive, within a local part).  The expiry sits in the
 * signed payload, since short tokens carry none of their own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "confirm.h"
#include "log.h"
#include "token.h"
#include "xalloc.h"

/* key - the derived key of confirmation tokens. */
static void
key(unsigned char k[TOKEN_KEY_LEN])
{
	token_derive(cfg.secret ? cfg.secret : "",
	    cfg.secret ? strlen(cfg.secret) : 0, CONFIRM_PURPOSE, k);
}

char *
confirm_token(enum confirm_op op, long long membership_id, time_t expires)
{
	unsigned char k[TOKEN_KEY_LEN];
	char payload[TOKEN_SHORT_PAYLOAD_MAX + 1];
	char *t;

	key(k);
	snprintf(payload, sizeof(payload), "%c%lld.%lld", (char)op,
	    membership_id, (long long)expires);
	if ((t = token_short_sign(k, CONFIRM_PURPOSE, payload)) == NULL)
		panic("confirm: payload %s refused", payload);
	return t;
}

/* number - the decimal digits at s up to stop (no sign, no leading zero,
 * at most 18 digits) into *v; the end in *endp.  0 or -1. */
static int
number(const char *s, char stop, long long *v, const char **endp)
{
	size_t n = strspn(s, "0123456789");

	if (n == 0 || n > 18 || (s[0] == '0' && n > 1) || s[n] != stop)
		return -1;
	*v = strtoll(s, NULL, 10);
	*endp = s + n;
	return 0;
}

int
confirm_check(const char *token, time_t now, struct confirm *out)
{
	unsigned char k[TOKEN_KEY_LEN];
	char payload[TOKEN_SHORT_PAYLOAD_MAX + 1];
	const char *p;
	long long mid, exp;

	memset(out, 0, sizeof(*out));
	if (token == NULL || strlen(token) > CONFIRM_TOKEN_MAX)
		return CONFIRM_BAD;
	key(k);
	if (token_short_verify(k, CONFIRM_PURPOSE, token, payload,
	    sizeof(payload)) != TOKEN_OK)
		return CONFIRM_BAD;
	if ((payload[0] != CONFIRM_SUBSCRIBE &&
	    payload[0] != CONFIRM_UNSUBSCRIBE) ||
	    number(payload + 1, '.', &mid, &p) == -1 ||
	    number(p + 1, '\0', &exp, &p) == -1 || mid <= 0)
		return CONFIRM_BAD;
	out->op = (enum confirm_op)payload[0];
	out->membership_id = mid;
	out->expires = (time_t)exp;
	return now > out->expires ? CONFIRM_EXPIRED : CONFIRM_OK;
}
