/* SPDX-License-Identifier: MIT */
/*
 * test_metrics.c - unit tests of counters, gauges and the Prometheus
 * rendering (metrics.c).
 *
 * The registry is process-wide and only grows, so every test uses its own
 * metric names.  Rendering is checked line by line against the exposition
 * format: one HELP/TYPE per name, series of one name grouped together.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "metrics.h"
#include "strbuf.h"

/* render - the current exposition text (allocated). */
static char *
render(void)
{
	struct strbuf *sb = strbuf_new(0);

	metrics_render(sb);
	return strbuf_detach(sb, NULL);
}

/* count_substr - occurrences of needle in hay. */
static int
count_substr(const char *hay, const char *needle)
{
	const char *p = hay;
	int n = 0;

	while ((p = strstr(p, needle)) != NULL) {
		n++;
		p += strlen(needle);
	}
	return n;
}

static void
test_counter_identity(void **state)
{
	struct metric *a, *b, *c, *d;

	(void)state;
	a = metric_counter("t_ident_total", "help", "code=\"200\"");
	b = metric_counter("t_ident_total", "help", "code=\"200\"");
	c = metric_counter("t_ident_total", "help", "code=\"500\"");
	d = metric_counter("t_ident_total", "help", NULL);
	assert_ptr_equal(a, b);
	assert_ptr_not_equal(a, c);
	assert_ptr_not_equal(a, d);
	assert_ptr_not_equal(c, d);
	assert_ptr_equal(d, metric_counter("t_ident_total", "other help",
	    NULL));
}

static void
test_add_set_value(void **state)
{
	struct metric *c, *g;

	(void)state;
	c = metric_counter("t_add_total", "adds", NULL);
	assert_int_equal(metric_value(c), 0);
	metric_add(c, 1);
	metric_add(c, 41);
	assert_int_equal(metric_value(c), 42);
	g = metric_gauge("t_gauge", "a gauge", NULL);
	metric_set(g, 10);
	metric_add(g, -3);
	assert_int_equal(metric_value(g), 7);
	metric_set(g, -5);
	assert_int_equal(metric_value(g), -5);
	metric_set(g, INT64_MAX);
	assert_true(metric_value(g) == INT64_MAX);
}

static int64_t gauge_fn_value;
static int64_t read_gauge(void) { return gauge_fn_value; }
static int64_t read_other(void) { return 99; }

static void
test_gauge_fn(void **state)
{
	struct metric *m;
	char *text;

	(void)state;
	gauge_fn_value = 17;
	metric_gauge_fn("t_fn_gauge", "computed", read_gauge);
	metric_gauge_fn("t_fn_events_total", "computed counter", read_other);
	/* the same (name, NULL labels) handle as metric_gauge returns */
	m = metric_gauge("t_fn_gauge", "computed", NULL);
	assert_int_equal(metric_value(m), 17);
	gauge_fn_value = -2;
	assert_int_equal(metric_value(m), -2);
	text = render();
	assert_non_null(strstr(text, "# TYPE t_fn_gauge gauge\n"
	    "t_fn_gauge -2\n"));
	/* a *_total name is a counter whatever computes it */
	assert_non_null(strstr(text, "# HELP t_fn_events_total computed "
	    "counter\n# TYPE t_fn_events_total counter\n"
	    "t_fn_events_total 99\n"));
	free(text);
	/* re-registering replaces the function */
	metric_gauge_fn("t_fn_gauge", "computed", read_other);
	assert_int_equal(metric_value(m), 99);
}

static void
test_render_grouping(void **state)
{
	struct metric *x, *y, *mid;
	char *text, *h, *sx, *sy, *hm;

	(void)state;
	x = metric_counter("t_group_total", "grouped", "code=\"1\"");
	mid = metric_gauge("t_group_mid", "in between", NULL);
	y = metric_counter("t_group_total", "grouped", "code=\"2\"");
	metric_add(x, 5);
	metric_add(y, 6);
	metric_set(mid, 3);
	text = render();
	assert_int_equal(count_substr(text, "# HELP t_group_total "), 1);
	assert_int_equal(count_substr(text, "# TYPE t_group_total "), 1);
	h = strstr(text, "# HELP t_group_total grouped\n"
	    "# TYPE t_group_total counter\n");
	sx = strstr(text, "t_group_total{code=\"1\"} 5\n");
	sy = strstr(text, "t_group_total{code=\"2\"} 6\n");
	hm = strstr(text, "# HELP t_group_mid in between\n"
	    "# TYPE t_group_mid gauge\nt_group_mid 3\n");
	assert_non_null(h);
	assert_non_null(sx);
	assert_non_null(sy);
	assert_non_null(hm);
	/* both series of a name directly under its one header */
	assert_true(h < sx && sx < sy && sy < hm);
	free(text);
}

static void
test_render_format(void **state)
{
	char *text, *line, *save = NULL;
	int series = 0;

	(void)state;
	metric_add(metric_counter("t_fmt_total", "format", "a=\"b\""), 3);
	text = render();
	assert_true(strlen(text) > 0);
	assert_int_equal(text[strlen(text) - 1], '\n');
	/* every line is a comment or "name[{labels}] integer" */
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char *sp, *end;

		if (line[0] == '#') {
			assert_true(strncmp(line, "# HELP ", 7) == 0 ||
			    strncmp(line, "# TYPE ", 7) == 0);
			continue;
		}
		sp = strrchr(line, ' ');
		assert_non_null(sp);
		strtoll(sp + 1, &end, 10);
		assert_int_equal(*end, '\0');
		assert_true(end > sp + 1);
		series++;
	}
	assert_true(series >= 1);
	free(text);
}

#define NTHREADS	4
#define NADDS		100000

static void *
adder(void *arg)
{
	struct metric *m = arg;
	int i;

	for (i = 0; i < NADDS; i++)
		metric_add(m, 1);
	return NULL;
}

static void *
registrar(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < NADDS / 100; i++)
		metric_add(metric_counter("t_race_reg_total", "raced", NULL),
		    1);
	return NULL;
}

static void
test_concurrent_adds(void **state)
{
	pthread_t t[NTHREADS], r[NTHREADS];
	struct metric *m;
	int i;

	(void)state;
	m = metric_counter("t_conc_total", "concurrent", NULL);
	for (i = 0; i < NTHREADS; i++) {
		assert_int_equal(pthread_create(&t[i], NULL, adder, m), 0);
		assert_int_equal(pthread_create(&r[i], NULL, registrar, NULL),
		    0);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		pthread_join(r[i], NULL);
	}
	assert_int_equal(metric_value(m), (int64_t)NTHREADS * NADDS);
	assert_int_equal(metric_value(metric_counter("t_race_reg_total",
	    "raced", NULL)), (int64_t)NTHREADS * (NADDS / 100));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_identity),
		cmocka_unit_test(test_add_set_value),
		cmocka_unit_test(test_gauge_fn),
		cmocka_unit_test(test_render_grouping),
		cmocka_unit_test(test_render_format),
		cmocka_unit_test(test_concurrent_adds),
	};

	/* GROUPS_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("GROUPS_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("GROUPS_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
