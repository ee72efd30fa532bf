/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - counters and gauges rendered in Prometheus text format.
 *
 * Registration takes a mutex and appends to a list that only grows, so a
 * handle stays valid for the life of the process; updates are relaxed
 * atomics.  Rendering groups the series of one name under one HELP/TYPE.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "xalloc.h"

struct metric {
	char		*name;
	char		*help;
	char		*labels;	/* may be NULL */
	int		 gauge;
	metric_fn	 fn;
	atomic_int_fast64_t value;
	struct metric	*next;
};

static pthread_mutex_t metrics_mu = PTHREAD_MUTEX_INITIALIZER;
static struct metric *metrics_head, **metrics_tail = &metrics_head;

static int
same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static struct metric *
metric_register(const char *name, const char *help, const char *labels,
    int gauge, metric_fn fn)
{
	struct metric *m;

	pthread_mutex_lock(&metrics_mu);
	for (m = metrics_head; m != NULL; m = m->next)
		if (strcmp(m->name, name) == 0 && same(m->labels, labels)) {
			if (fn != NULL)
				m->fn = fn;
			pthread_mutex_unlock(&metrics_mu);
			return m;
		}
	m = xcalloc(1, sizeof(*m));
	m->name = xstrdup(name);
	m->help = xstrdup(help);
	m->labels = labels ? xstrdup(labels) : NULL;
	m->gauge = gauge;
	m->fn = fn;
	*metrics_tail = m;
	metrics_tail = &m->next;
	pthread_mutex_unlock(&metrics_mu);
	return m;
}

struct metric *
metric_counter(const char *name, const char *help, const char *labels)
{
	return metric_register(name, help, labels, 0, NULL);
}

struct metric *
metric_gauge(const char *name, const char *help, const char *labels)
{
	return metric_register(name, help, labels, 1, NULL);
}

void
metric_gauge_fn(const char *name, const char *help, metric_fn fn)
{
	/* A *_total name is a counter whatever reads it. */
	size_t n = strlen(name);
	int gauge = !(n > 6 && strcmp(name + n - 6, "_total") == 0);

	metric_register(name, help, NULL, gauge, fn);
}

void
metric_add(struct metric *m, int64_t v)
{
	atomic_fetch_add_explicit(&m->value, v, memory_order_relaxed);
}

void
metric_set(struct metric *m, int64_t v)
{
	atomic_store_explicit(&m->value, v, memory_order_relaxed);
}

int64_t
metric_value(const struct metric *m)
{
	if (m->fn != NULL)
		return m->fn();
	return atomic_load_explicit(&m->value, memory_order_relaxed);
}

void
metrics_render(struct strbuf *sb)
{
	struct metric *m, *o;

	pthread_mutex_lock(&metrics_mu);
	for (m = metrics_head; m != NULL; m = m->next) {
		/* HELP/TYPE once, before the first series of a name. */
		for (o = metrics_head; o != m; o = o->next)
			if (strcmp(o->name, m->name) == 0)
				break;
		if (o == m)
			strbuf_appendf(sb, "# HELP %s %s\n# TYPE %s %s\n",
			    m->name, m->help, m->name,
			    m->gauge ? "gauge" : "counter");
		else
			continue;
		for (o = m; o != NULL; o = o->next) {
			if (strcmp(o->name, m->name) != 0)
				continue;
			if (o->labels != NULL)
				strbuf_appendf(sb, "%s{%s} %lld\n", o->name,
				    o->labels, (long long)metric_value(o));
			else
				strbuf_appendf(sb, "%s %lld\n", o->name,
				    (long long)metric_value(o));
		}
	}
	pthread_mutex_unlock(&metrics_mu);
}
