/* SPDX-License-Identifier: MIT */
/*
 * testutil.h - helpers shared by the cmocka tests and fuzz targets.
 *
 * Header-only (static functions) because every test program is built from
 * its one .c file.  Include after <cmocka.h> where the fixtures are used.
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TESTUTIL_UNUSED	__attribute__((unused))

/* A private temporary directory per test (cmocka setup/teardown). */
struct fixture {
	char	dir[PATH_MAX];
};

/* setup_dir - mkdtemp under $TMPDIR or /tmp, named after the program. */
static TESTUTIL_UNUSED int
setup_dir(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/%s.XXXXXX",
	    tmp && *tmp ? tmp : "/tmp", program_invocation_short_name);
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

/* teardown_dir - remove the directory and everything in it. */
static TESTUTIL_UNUSED int
teardown_dir(void **state)
{
	struct fixture *f = *state;
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* is_rfc3339_us - "YYYY-MM-DDTHH:MM:SS.ffffffZ", the time of every event. */
static TESTUTIL_UNUSED int
is_rfc3339_us(const char *s)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
	size_t i;

	if (s == NULL || strlen(s) != sizeof(pat) - 1)
		return 0;
	for (i = 0; i < sizeof(pat) - 1; i++)
		if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
			return 0;
	return 1;
}

#endif
