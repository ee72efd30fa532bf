/* SPDX-License-Identifier: MIT */
/*
 * errord_load.c - load generator for bench/errord (compiled by the script
 * into a temporary directory; not part of the build).
 *
 *	errord_load HOST PORT SECRET CONCURRENCY BATCH SECONDS
 *
 * CONCURRENCY threads each keep one HTTP/1.1 keep-alive connection to
 * errord and POST /v1/log batches of BATCH events back to back for
 * SECONDS, timing each request from the first byte sent to the last byte
 * of the reply.  Prints one line of key=value figures: events/s accepted,
 * requests, errors, and the p50/p99/max latency a sender saw.
 * Loopback only; bounded in time and in samples kept.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES	(1024 * 1024)	/* per thread */

static const char *host, *secret;
static int port, batch;
static double seconds;

struct worker {
	pthread_t	 t;
	int		 id;
	uint32_t	*lat_us;
	size_t		 n;
	unsigned long	 events, errors;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
connect_to(void)
{
	struct sockaddr_in sin;
	int	 fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, host, &sin.sin_addr);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* request - build one POST with a batch of events into buf. */
static size_t
request(char *buf, size_t cap, char *body, size_t bcap, int id,
    unsigned long *seq)
{
	size_t	 bl = 0, hl;
	int	 i;

	bl += (size_t)snprintf(body + bl, bcap - bl, "{\"events\":[");
	for (i = 0; i < batch; i++, (*seq)++)
		bl += (size_t)snprintf(body + bl, bcap - bl,
		    "%s{\"time\":\"2026-12-03T14:00:00.000000Z\","
		    "\"daemon\":\"bench\",\"pid\":%d,\"level\":\"info\","
		    "\"message\":\"bench event w%d-%lu of a typical length, "
		    "about one log line\",\"fields\":{\"n\":%lu}}",
		    i ? "," : "", 1000 + id, id, *seq, *seq);
	bl += (size_t)snprintf(body + bl, bcap - bl, "]}");
	hl = (size_t)snprintf(buf, cap, "POST /v1/log HTTP/1.1\r\n"
	    "Host: %s:%d\r\nAuthorization: Bearer %s\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
	    host, port, secret, bl);
	memcpy(buf + hl, body, bl);
	return hl + bl;
}

/* roundtrip - send req, read one response; its status or -1. */
static int
roundtrip(int fd, const char *req, size_t len, char *in, size_t cap)
{
	size_t	 have = 0, off = 0, need;
	ssize_t	 r;
	char	*end, *cl;
	int	 status;

	while (off < len) {
		if ((r = write(fd, req + off, len - off)) <= 0)
			return -1;
		off += (size_t)r;
	}
	for (;;) {
		if (have == cap - 1)
			return -1;
		if ((r = read(fd, in + have, cap - 1 - have)) <= 0)
			return -1;
		have += (size_t)r;
		in[have] = '\0';
		if ((end = strstr(in, "\r\n\r\n")) == NULL)
			continue;
		if ((cl = strcasestr(in, "\r\nContent-Length:")) == NULL ||
		    cl > end)
			return -1;
		need = (size_t)(end + 4 - in) + strtoul(cl + 17, NULL, 10);
		if (have >= need)
			break;
	}
	if (sscanf(in, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	return status;
}

static void *
work(void *arg)
{
	struct worker *w = arg;
	size_t	 bcap = (size_t)batch * 300 + 64, cap = bcap + 512, len;
	char	*req = malloc(cap), *body = malloc(bcap), in[8192];
	unsigned long seq = 0;
	double	 end = now_s() + seconds, t0;
	int	 fd = -1, st;

	while (now_s() < end) {
		if (fd < 0 && (fd = connect_to()) < 0) {
			w->errors++;
			usleep(10000);
			continue;
		}
		len = request(req, cap, body, bcap, w->id, &seq);
		t0 = now_s();
		st = roundtrip(fd, req, len, in, sizeof(in));
		if (st != 200) {
			w->errors++;
			close(fd);
			fd = -1;
			continue;
		}
		w->events += (unsigned long)batch;
		if (w->n < MAX_SAMPLES)
			w->lat_us[w->n++] = (uint32_t)((now_s() - t0) * 1e6);
	}
	if (fd >= 0)
		close(fd);
	free(req);
	free(body);
	return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	struct worker *w;
	uint32_t *all;
	size_t	 n = 0, i;
	unsigned long events = 0, errors = 0;
	double	 t0, el;
	int	 c;

	if (argc != 7) {
		fprintf(stderr, "usage: errord_load host port secret "
		    "concurrency batch seconds\n");
		return 2;
	}
	host = argv[1];
	port = atoi(argv[2]);
	secret = argv[3];
	c = atoi(argv[4]);
	batch = atoi(argv[5]);
	seconds = atof(argv[6]);
	if (c < 1 || c > 1024 || batch < 1 || batch > 2000 || seconds <= 0 ||
	    seconds > 60)
		return 2;
	w = calloc((size_t)c, sizeof(*w));
	t0 = now_s();
	for (i = 0; i < (size_t)c; i++) {
		w[i].id = (int)i;
		w[i].lat_us = malloc(MAX_SAMPLES * sizeof(uint32_t));
		pthread_create(&w[i].t, NULL, work, &w[i]);
	}
	for (i = 0; i < (size_t)c; i++) {
		pthread_join(w[i].t, NULL);
		n += w[i].n;
		events += w[i].events;
		errors += w[i].errors;
	}
	el = now_s() - t0;
	all = malloc((n + 1) * sizeof(*all));
	for (n = 0, i = 0; i < (size_t)c; i++) {
		memcpy(all + n, w[i].lat_us, w[i].n * sizeof(uint32_t));
		n += w[i].n;
		free(w[i].lat_us);
	}
	qsort(all, n, sizeof(*all), cmp_u32);
	printf("events_per_s=%.0f requests=%zu errors=%lu p50_ms=%.3f "
	    "p99_ms=%.3f max_ms=%.3f\n", events / el, n, errors,
	    n ? all[n / 2] / 1000.0 : 0, n ? all[n * 99 / 100] / 1000.0 : 0,
	    n ? all[n - 1] / 1000.0 : 0);
	free(all);
	free(w);
	return 0;
}
