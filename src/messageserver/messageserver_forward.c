/* SPDX-License-Identifier: MIT */
/*
 * messageserver_forward.c - the owners' address and forward rules.
 *
 * Not implemented yet: the recipient is accepted and logged.
 */
#include <stdio.h>

#include "db.h"
#include "messageserver.h"

int
messageserver_forward(struct db *d, const struct ms_route *r,
    const struct ms_submission *s, struct ms_action *a)
{
	(void)d;
	(void)r;
	(void)s;
	a->status = "ignored";
	snprintf(a->reason, sizeof(a->reason), "not processed yet");
	return 0;
}
