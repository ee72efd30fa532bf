/* SPDX-License-Identifier: MIT */
/*
 * fsutil.h - small file-system helpers shared by the daemons.
 */
#ifndef FSUTIL_H
#define FSUTIL_H

#include <sys/types.h>

/* fsutil_mkdirs - mkdir -p: create path and missing parents with mode;
 * 0 (also when it exists as a directory) or -1 with errno set. */
int	 fsutil_mkdirs(const char *path, mode_t mode);

/* fsutil_fsync_dir - fsync the directory holding a just-created or renamed
 * entry, so the entry itself survives a crash; 0 or -1. */
int	 fsutil_fsync_dir(const char *dir);

#endif
