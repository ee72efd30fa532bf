/* SPDX-License-Identifier: MIT */
/*
 * confirm.h - the signed token of an emailed confirmation request
 * (subscribe, unsubscribe), shared by messageserver, which sends and acts
 * on it, and web, which shows what a /confirm link would do.
 *
 * A short token (token.h, purpose "confirm", key derived from the system
 * secret with the same label): the payload is
 *	<op><membership id>.<expires>	op "s" subscribe, "u" unsubscribe;
 *					expires in unix seconds
 * so it fits an email local part (group+confirm-TOKEN@domain) and
 * survives a change of case on the way back.  It names a membership, not
 * an address: a replay after the action finds the membership in another
 * state (or gone) and changes nothing.
 */
#ifndef CONFIRM_H
#define CONFIRM_H

#include <time.h>

#define CONFIRM_PURPOSE		"confirm"
#define CONFIRM_TOKEN_MAX	64	/* bytes of a token we accept */

enum confirm_op {
	CONFIRM_SUBSCRIBE = 's',
	CONFIRM_UNSUBSCRIBE = 'u',
};

/* What a token asks. */
struct confirm {
	enum confirm_op	 op;
	long long	 membership_id;
	time_t		 expires;
};

#define CONFIRM_OK	0
#define CONFIRM_BAD	-1	/* malformed, forged, or not ours */
#define CONFIRM_EXPIRED	-2	/* genuine, *out filled, but too old */

/* confirm_token - the token for op on membership_id, valid until expires
 * (returns allocated, caller frees). */
char	*confirm_token(enum confirm_op op, long long membership_id,
	    time_t expires);
/* confirm_check - verify token at time now; CONFIRM_OK or CONFIRM_EXPIRED
 * with *out filled, or CONFIRM_BAD. */
int	 confirm_check(const char *token, time_t now, struct confirm *out);

#endif
