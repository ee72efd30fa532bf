/* SPDX-License-Identifier: MIT */
/*
 * smtpd.h - private interface of smtpd's modules.
 */
#ifndef SMTPD_H
#define SMTPD_H

#include <event2/event.h>

/* smtpd_session.c: the SMTP listener and its sessions. */
int	 smtpd_listen(struct event_base *, const char *host, int port);
void	 smtpd_close(void);

#endif
