/* SPDX-License-Identifier: MIT */
/*
 * errord - the error log of the whole system.
 *
 * Every daemon ships its log events and crash backtraces here; errord
 * keeps them in an append-only JSON-lines store and lets operators tail
 * and filter it (errtail, the web UI).  Endpoints (api_proto.h):
 *	POST /v1/log	one event or {"events": [...]}, 200 once durable
 *	GET  /v1/tail	?daemon&level&since&text&limit&follow, x-ndjson
 * plus /healthz and /metrics.  It also collects crash reports from
 * crash_dir every second.
 *
 * SECURITY: listens on loopback; /v1/ routes need the shared API secret.
 * It trusts nothing in an event: every field is checked and bounded before
 * it is stored.  It keeps no privileges: it writes only errord_dir and
 * removes only crash reports.  It never ships logs to itself over HTTP:
 * its own events go straight into its store (the log sink).
 */
#include "api_proto.h"
#include "bounds.h"
#include "config.h"
#include "daemon.h"
#include "errord.h"
#include "log.h"
#include "metrics.h"

/* Handlers wait for a group commit on the server's threads (one blocked
 * thread stalls its connections): more threads than the default let a
 * commit gather many senders' batches (bench/errord: 2x at 64 senders). */
#define ERRORD_HTTP_THREADS_MIN	16

struct errord_metrics errord_m;

static const struct httpd_route errord_routes[] = {
	{ "POST", API_ERRORD_LOG, errord_log_handler, HTTPD_JSON,
	    ERRORD_MAX_BODY },
	{ "GET", API_ERRORD_TAIL, errord_tail_handler, 0, 0 },
	HTTPD_ROUTE_END
};

/* errord_sink - errord's own log events go into its store, unwaited. */
static void
errord_sink(json_t *ev)
{
	errord_store_put_async(ev);
}

/* errord_metrics_init - register the counters. */
static void
errord_metrics_init(void)
{
	errord_m.accepted = metric_counter("errord_events_accepted_total",
	    "events acknowledged to senders", NULL);
	errord_m.stored = metric_counter("errord_events_stored_total",
	    "events written to the store (also own and crash events)", NULL);
	errord_m.batches = metric_counter("errord_batches_total",
	    "POST /v1/log batches accepted", NULL);
	errord_m.commits = metric_counter("errord_commits_total",
	    "group commits (one write each)", NULL);
	errord_m.fsyncs = metric_counter("errord_fsyncs_total",
	    "fdatasync calls on the store", NULL);
	errord_m.bytes = metric_counter("errord_bytes_written_total",
	    "bytes appended to the store", NULL);
	errord_m.rejected = metric_counter("errord_rejected_total",
	    "batches refused as invalid", NULL);
	errord_m.dropped = metric_counter("errord_own_events_dropped_total",
	    "errord's own events dropped (queue full or stopping)", NULL);
	errord_m.followers = metric_gauge("errord_followers",
	    "tail -f streams open", NULL);
	errord_m.skipped = metric_counter("errord_follow_skipped_total",
	    "events followers missed by falling behind the ring", NULL);
	errord_m.crashes = metric_counter("errord_crash_reports_total",
	    "crash reports stored", NULL);
}

/* errord_init - open the store before serving. */
static int
errord_init(void)
{
	errord_metrics_init();
	if (cfg.http_threads < ERRORD_HTTP_THREADS_MIN)
		cfg.http_threads = ERRORD_HTTP_THREADS_MIN;
	errord_ring_init((size_t)cfg.errord_ring);
	log_set_sink(errord_sink);
	if (errord_store_open(cfg.errord_dir) < 0) {
		log_set_sink(NULL);
		return -1;
	}
	return 0;
}

/* errord_stop - end the run loop and every tail -f. */
static void
errord_stop(void)
{
	errord_crash_stop();
	errord_ring_stop();
}

/* errord_fini - after the server stopped: drain and close the store. */
static void
errord_fini(void)
{
	log_set_sink(NULL);	/* from here on: stderr */
	errord_store_close();
	errord_ring_fini();
}

static const struct daemon_spec errord_spec = {
	.name = "errord",
	.port = &cfg.errord_port,
	.routes = errord_routes,
	.flags = DAEMON_NO_ERRORD,
	.max_body = ERRORD_MAX_BODY,
	.init = errord_init,
	.run = errord_crash_run,
	.stop = errord_stop,
	.fini = errord_fini,
	.health = errord_store_healthy,
};

int
main(int argc, char **argv)
{
	daemon_main(argc, argv, &errord_spec);
}
