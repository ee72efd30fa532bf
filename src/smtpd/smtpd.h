/* SPDX-License-Identifier: MIT */
/*
 * smtpd.h - private interface of smtpd's modules.
 */
#ifndef SMTPD_H
#define SMTPD_H

#include <event2/event.h>

struct messageserver_clnt;

/* smtpd.c: the one messageserver client, shared by every thread. */
extern struct messageserver_clnt *smtpd_ms;

/* smtpd_session.c: the SMTP listener and its sessions.  smtpd_listen
 * calls smtpd_session_init (the metrics); smtpd_session_new starts a
 * session on bev, which it owns from then on, for a client at peer (a
 * numeric address); fd is the TCP socket under bev, or -1.  The fuzzer
 * drives sessions over bufferevent pairs this way. */
struct bufferevent;
int	 smtpd_listen(struct event_base *, const char *host, int port);
void	 smtpd_close(void);
void	 smtpd_session_init(void);
void	 smtpd_session_new(struct bufferevent *bev, evutil_socket_t fd,
	    const char *peer);

/* smtpd_tls.c: STARTTLS (OpenSSL); smtpd_tls_ctx is NULL when no
 * certificate is configured. */
int	 smtpd_tls_init(void);
void	 smtpd_tls_fini(void);
struct ssl_ctx_st;
extern struct ssl_ctx_st *smtpd_tls_ctx;

/* smtpd_routes.c: what auth_http routed, for the RCPT nginx replays
 * (put, take), and the addresses auth_http need not ask about again for
 * a second (learn, known). */
void	 smtpd_routes_put(const char *client, const char *addr);
int	 smtpd_routes_take(const char *client, const char *addr);
void	 smtpd_routes_learn(const char *addr);
int	 smtpd_routes_known(const char *addr);

/*
 * smtpd_worker.c: a fixed pool of threads for the blocking calls to
 * messageserver.  work(arg) runs on a worker; done(arg) then runs on the
 * event loop's thread.  Neither may be NULL; arg is owned by the caller.
 */
typedef void (*smtpd_job_fn)(void *);
int	 smtpd_worker_start(struct event_base *, int nthreads);
void	 smtpd_worker_submit(smtpd_job_fn work, smtpd_job_fn done, void *arg);
void	 smtpd_worker_stop(void);

#endif
