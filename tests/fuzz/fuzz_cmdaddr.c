/* SPDX-License-Identifier: MIT */
/*
 * fuzz_cmdaddr.c - libFuzzer target for the local-part parser and the
 * forward rules (cmdaddr.c).
 *
 * The input as a local part:
 *   - parsing never crashes; a refusal leaves the result zeroed;
 *   - an accepted result is bounded and NUL-terminated, its group a name
 *     groups.name would take (empty exactly for bounces[+TOKEN]), its
 *     command known when it is a command;
 *   - its canonical form (cmdaddr_format) parses back to the same result,
 *     and formatting that gives the same bytes.
 * The input as forward rules: a target found is NUL-terminated within
 * the buffer, one word holding '@'.
 * The input as the TOKEN of group+confirm-TOKEN (confirm.c, under the
 * empty secret): never accepted unless it is a well-formed token, and
 * what is accepted signs back into a token that verifies the same.
 * Seeds: tests/fuzz/cmdaddr/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmdaddr.h"
#include "confirm.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_zero(const struct cmdaddr *a)
{
	static const struct cmdaddr zero;

	if (memcmp(a, &zero, sizeof(zero)) != 0)
		abort();
}

static void
check_parse(const char *s)
{
	struct cmdaddr a, b;
	char buf[CMDADDR_LOCAL_MAX + 1], again[CMDADDR_LOCAL_MAX + 1];
	size_t i;

	if (cmdaddr_parse(s, &a) != 0) {
		check_zero(&a);
		return;
	}
	if (memchr(a.group, '\0', sizeof(a.group)) == NULL ||
	    memchr(a.arg, '\0', sizeof(a.arg)) == NULL)
		abort();
	/* only the domain's bounce address has no group */
	if ((a.group[0] == '\0') != (a.kind == CMDADDR_KIND_BOUNCE &&
	    strncasecmp(s, "bounces", 7) == 0 && (s[7] == '\0' ||
	    s[7] == '+')) || strlen(a.group) > CMDADDR_GROUP_MAX)
		abort();
	for (i = 0; a.group[i] != '\0'; i++)
		if (strchr("abcdefghijklmnopqrstuvwxyz0123456789._-",
		    a.group[i]) == NULL)
			abort();
	if (a.kind == CMDADDR_KIND_COMMAND &&
	    (a.cmd == CMDADDR_NONE || cmdaddr_name(a.cmd)[0] == '\0' ||
	    cmdaddr_command(cmdaddr_name(a.cmd), a.arg) != a.cmd))
		abort();
	if (a.kind != CMDADDR_KIND_COMMAND && a.cmd != CMDADDR_NONE)
		abort();
	if (cmdaddr_format(&a, buf, sizeof(buf)) != 0)
		abort();
	if (cmdaddr_parse(buf, &b) != 0 || memcmp(&a, &b, sizeof(a)) != 0)
		abort();
	if (cmdaddr_format(&b, again, sizeof(again)) != 0 ||
	    strcmp(buf, again) != 0)
		abort();
}

static void
check_forward(const char *rules)
{
	char target[32];
	size_t n;

	memset(target, 'x', sizeof(target));
	if (cmdaddr_forward(rules, "postmaster", target, sizeof(target)) == 1) {
		if (memchr(target, '\0', sizeof(target)) == NULL)
			abort();
		n = strlen(target);
		if (n == 0 || strchr(target, '@') == NULL ||
		    strcspn(target, " \t,") != n)
			abort();
	}
}

static void
check_confirm(const char *s)
{
	struct confirm c, again;
	char *t;
	int rc;

	rc = confirm_check(s, 1700000000, &c);
	if (rc == CONFIRM_BAD) {
		if (c.op != 0 || c.membership_id != 0 || c.expires != 0)
			abort();
		return;
	}
	if ((c.op != CONFIRM_SUBSCRIBE && c.op != CONFIRM_UNSUBSCRIBE) ||
	    c.membership_id <= 0 ||
	    (rc == CONFIRM_EXPIRED) != (c.expires < 1700000000))
		abort();
	t = confirm_token(c.op, c.membership_id, c.expires);
	if (confirm_check(t, 1700000000, &again) != rc ||
	    memcmp(&c, &again, sizeof(c)) != 0 ||
	    strlen(t) > CONFIRM_TOKEN_MAX)
		abort();
	free(t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	char err[128];

	if (size > 4 * CMDADDR_LOCAL_MAX)
		return 0;
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	check_parse(s);
	check_forward(s);
	check_confirm(s);
	if (cmdaddr_forward_check(s, err, sizeof(err)) == -1 &&
	    memchr(err, '\0', sizeof(err)) == NULL)
		abort();
	free(s);
	return 0;
}
