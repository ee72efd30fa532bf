/* SPDX-License-Identifier: MIT */
/*
 * errord_log.c - POST /v1/log: take a batch of events from a daemon.
 *
 * The body (decoded strictly by httpd) is one event or {"events": [...]};
 * errord_batch_parse checks every event, and one bad event refuses the
 * whole batch with 400 naming its index and field, so nothing of it is
 * stored.  A good batch is handed to the store, and the reply
 * {"accepted": N} is sent only once the group commit holding it is on
 * disk.  The route is authenticated with the shared API secret.
 */
#include <stdio.h>

#include "api_proto.h"
#include "errord.h"
#include "log.h"
#include "metrics.h"

/* errord_log_handler - POST /v1/log. */
int
errord_log_handler(struct httpd_req *req)
{
	json_t	*events;
	char	 err[512];
	size_t	 n;

	if (errord_batch_parse(httpd_req_json(req), &events, err,
	    sizeof(err)) < 0) {
		metric_add(errord_m.rejected, 1);
		return httpd_reply_error(req, 400, "%s", err);
	}
	n = json_array_size(events);
	if (errord_store_put(events) < 0) {
		json_decref(events);
		return httpd_reply_error(req, 503,
		    "the store cannot write; events not stored");
	}
	json_decref(events);
	metric_add(errord_m.accepted, (int64_t)n);
	metric_add(errord_m.batches, 1);
	return httpd_reply_json(req, 200, json_pack("{sI}", F_EV_ACCEPTED,
	    (json_int_t)n));
}
