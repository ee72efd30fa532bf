/* SPDX-License-Identifier: MIT */
/*
 * fuzz_crash_parse.c - libFuzzer target for the crash-report parser.
 *
 * crash_parse reads files any crashed daemon left in crash_dir: it must
 * never crash on arbitrary bytes, and what it accepts must be an event
 * errord can store: daemon from the allowed alphabet, pid > 0, level
 * crit, a message naming the signal, an RFC 3339 time, text that encodes
 * as JSON.  Seeds: tests/fuzz/crash_parse/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api_proto.h"
#include "crash.h"
#include "../testutil.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *daemon, *msg;
	json_t *ev;
	char *s;

	if ((ev = crash_parse((const char *)data, size)) == NULL)
		return 0;
	daemon = json_string_value(json_object_get(ev, F_EV_DAEMON));
	msg = json_string_value(json_object_get(ev, F_EV_MESSAGE));
	if (daemon == NULL || *daemon == '\0' ||
	    strspn(daemon, "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
	    strlen(daemon))
		abort();
	if (json_integer_value(json_object_get(ev, F_EV_PID)) <= 0)
		abort();
	if (strcmp(json_string_value(json_object_get(ev, F_EV_LEVEL)),
	    "crit") != 0)
		abort();
	if (msg == NULL || strncmp(msg, "crashed: signal ", 16) != 0)
		abort();
	if (!is_rfc3339_us(json_string_value(json_object_get(ev,
	    F_EV_TIME))))
		abort();
	if (!json_is_string(json_object_get(ev, F_EV_BACKTRACE)))
		abort();
	if ((s = json_dumps(ev, JSON_COMPACT)) == NULL)
		abort();
	free(s);
	json_decref(ev);
	return 0;
}
