/* SPDX-License-Identifier: MIT */
/*
 * smtpd_routes.c - hand the answer nginx's auth_http just got to the
 * session that follows it.
 *
 * For every connection nginx asks GET /v1/auth about the first RCPT, then
 * connects to us and replays that same RCPT within milliseconds: asking
 * messageserver again costs a request, a query and two thread hops per
 * message.  So a routed answer of auth_http leaves one credit for (client
 * address, recipient); the RCPT of a session whose client address came by
 * XCLIENT takes it instead of asking, if it is at most SMTPD_ROUTE_TTL
 * seconds old.  Refusals and failures leave nothing (smtpd asks again and
 * answers itself, as without this table).  The table is small and fixed:
 * a slot taken over by another key only costs one more lookup.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>

#include "bounds.h"
#include "smtpd.h"

#define SMTPD_ROUTE_SLOTS	256
#define SMTPD_ROUTE_TTL		5	/* seconds: auth_http to RCPT */
#define SMTPD_ROUTE_CREDITS	1000	/* sessions in flight per key */
#define SMTPD_ROUTE_KEY		(INET6_ADDRSTRLEN + SMTP_ADDR_MAX + 2)

struct route_slot {
	char	 key[SMTPD_ROUTE_KEY];	/* client NUL address */
	size_t	 keylen;
	int	 credits;
	time_t	 expires;
};

static pthread_mutex_t rt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct route_slot rt_slots[SMTPD_ROUTE_SLOTS];

/* route_key - "client\0addr" in key; 0, or -1 when it does not fit. */
static int
route_key(const char *client, const char *addr, char *key, size_t *len)
{
	size_t c = strlen(client), a = strlen(addr);

	if (c + 1 + a > SMTPD_ROUTE_KEY)
		return -1;
	memcpy(key, client, c);
	key[c] = '\0';
	memcpy(key + c + 1, addr, a);
	*len = c + 1 + a;
	return 0;
}

/* route_slot - FNV-1a of the key picks the one slot it may live in. */
static struct route_slot *
route_slot(const char *key, size_t len)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 16777619u;
	return &rt_slots[h % SMTPD_ROUTE_SLOTS];
}

static time_t
now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* smtpd_routes_put - auth_http routed addr for client: one credit. */
void
smtpd_routes_put(const char *client, const char *addr)
{
	char key[SMTPD_ROUTE_KEY];
	struct route_slot *sl;
	size_t len;
	time_t now = now_sec();

	if (client == NULL || route_key(client, addr, key, &len) == -1)
		return;
	pthread_mutex_lock(&rt_lock);
	sl = route_slot(key, len);
	if (sl->keylen != len || memcmp(sl->key, key, len) != 0 ||
	    sl->expires < now) {
		memcpy(sl->key, key, len);
		sl->keylen = len;
		sl->credits = 0;
	}
	if (sl->credits < SMTPD_ROUTE_CREDITS)
		sl->credits++;
	sl->expires = now + SMTPD_ROUTE_TTL;
	pthread_mutex_unlock(&rt_lock);
}

/* smtpd_routes_take - 1 if a fresh credit for (client, addr) was taken. */
int
smtpd_routes_take(const char *client, const char *addr)
{
	char key[SMTPD_ROUTE_KEY];
	struct route_slot *sl;
	size_t len;
	int ok = 0;

	if (route_key(client, addr, key, &len) == -1)
		return 0;
	pthread_mutex_lock(&rt_lock);
	sl = route_slot(key, len);
	if (sl->keylen == len && memcmp(sl->key, key, len) == 0 &&
	    sl->credits > 0 && sl->expires >= now_sec()) {
		sl->credits--;
		ok = 1;
	}
	pthread_mutex_unlock(&rt_lock);
	return ok;
}
