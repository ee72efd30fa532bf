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
 *
 * auth_http itself asks messageserver about an address at most once per
 * SMTPD_KNOWN_MS: a routed address is remembered that long (a second
 * table, by address alone), and auth_http says OK again without asking.
 * A busy group gets many messages a second, and each cost a request, a
 * query and two thread hops before it could even connect.  Only routed
 * answers are remembered, so a new group is never refused for stale
 * knowledge; a group deleted within that second is still let through
 * to RCPT, and messageserver, which routes every recipient again at the
 * end of DATA, refuses the message there (554).
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>

#include "bounds.h"
#include "smtpd.h"
#include "xalloc.h"

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

#define SMTPD_KNOWN_SLOTS	256
#define SMTPD_KNOWN_MS		1000	/* auth_http asks once per address */

struct known_slot {
	char	 addr[SMTP_ADDR_MAX + 1];
	long long until_ms;
};

static pthread_mutex_t rt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct route_slot rt_slots[SMTPD_ROUTE_SLOTS];
static struct known_slot kn_slots[SMTPD_KNOWN_SLOTS];

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

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* known_slot - the one slot addr may live in (FNV-1a). */
static struct known_slot *
known_slot(const char *addr)
{
	uint32_t h = 2166136261u;
	const char *p;

	for (p = addr; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return &kn_slots[h % SMTPD_KNOWN_SLOTS];
}

/* smtpd_routes_learn - messageserver just routed addr. */
void
smtpd_routes_learn(const char *addr)
{
	struct known_slot *sl;

	if (strlen(addr) > SMTP_ADDR_MAX)
		return;
	pthread_mutex_lock(&rt_lock);
	sl = known_slot(addr);
	strlcpy_chk(sl->addr, addr, sizeof(sl->addr));
	sl->until_ms = now_ms() + SMTPD_KNOWN_MS;
	pthread_mutex_unlock(&rt_lock);
}

/* smtpd_routes_known - 1 if addr was routed in the last SMTPD_KNOWN_MS. */
int
smtpd_routes_known(const char *addr)
{
	struct known_slot *sl;
	int ok;

	pthread_mutex_lock(&rt_lock);
	sl = known_slot(addr);
	ok = strcmp(sl->addr, addr) == 0 && sl->until_ms >= now_ms();
	pthread_mutex_unlock(&rt_lock);
	return ok;
}
