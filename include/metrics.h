/* SPDX-License-Identifier: MIT */
/*
 * metrics.h - process-wide counters and gauges in Prometheus text format.
 *
 * Metrics are registered once (usually at start-up) and live for the life
 * of the process; updates are lock-free atomics, so any thread may count.
 * The same name may be registered with several label sets, e.g.
 * metric_counter("http_requests_total", "...", "code=\"200\"").
 */
#ifndef METRICS_H
#define METRICS_H

#include <stdint.h>

#include "strbuf.h"

struct metric;
typedef int64_t (*metric_fn)(void);

/* metric_counter - returns a handle valid for the life of the process; the
 * same (name, labels) twice returns the same handle.  labels may be NULL. */
struct metric *metric_counter(const char *name, const char *help,
	    const char *labels);
struct metric *metric_gauge(const char *name, const char *help,
	    const char *labels);
/* metric_gauge_fn - a gauge whose value is read by calling fn at render. */
void	 metric_gauge_fn(const char *name, const char *help, metric_fn fn);
void	 metric_add(struct metric *, int64_t);
void	 metric_set(struct metric *, int64_t);
int64_t	 metric_value(const struct metric *);
/* metrics_render - append every metric in exposition format 0.0.4. */
void	 metrics_render(struct strbuf *);

#endif
