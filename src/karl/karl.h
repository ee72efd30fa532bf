/* SPDX-License-Identifier: MIT */
/*
 * karl.h - private interface of karl's modules.
 */
#ifndef KARL_H
#define KARL_H

#include <stdint.h>

/* karl_spool.c: the leveldb spool, one per karl instance. */
int	 karl_spool_open(const char *dir);
void	 karl_spool_close(void);
/* karl_spool_jobs - number of jobs on disk (walks the keys). */
int64_t	 karl_spool_jobs(void);

#endif
