/* SPDX-License-Identifier: MIT */
/*
 * fuzz_errord_event.c - libFuzzer target for errord's request decoding.
 *
 * The input is a POST /v1/log body: decoded the way httpd decodes an
 * HTTPD_JSON body, then given to errord_batch_parse (which runs
 * errord_event_check on every event); accepted events go through the tail
 * filter as errord would.  The raw input, as a string, also feeds the
 * RFC 3339 and "since" parsers.  Seeds: tests/fuzz/errord_event/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "errord_clnt.h"
#include "log.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct errord_tail_query q;
	json_t	*body, *evs, *ev;
	char	 err[512], *s;
	int64_t	 us;
	size_t	 i;

	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	(void)errord_time_parse(s, &us);
	(void)errord_since_parse(s, &us);
	free(s);

	body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES,
	    NULL);
	if (body == NULL)
		return 0;
	if (errord_batch_parse(body, &evs, err, sizeof(err)) == 0) {
		errord_tail_query_init(&q);
		q.level = LOG_LVL_WARN;
		q.since_us = 1;
		memcpy(q.text, "x", 2);
		json_array_foreach(evs, i, ev) {
			(void)errord_tail_match(&q, ev);
			(void)errord_event_level(ev);
		}
		json_decref(evs);
	} else if (strlen(err) == 0)
		abort();	/* every refusal has a reason */
	json_decref(body);
	return 0;
}
