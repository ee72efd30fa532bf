/* SPDX-License-Identifier: MIT */
/*
 * karl_spool.c - karl's on-disk spool (leveldb).
 *
 * A job is written with sync=true before karl acknowledges it and deleted
 * only when every receiver is delivered or failed for good.  leveldb allows
 * one process per database, so each karl instance owns its own directory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <leveldb/c.h>

#include "fsutil.h"
#include "karl.h"
#include "log.h"

#define JOB_PREFIX	"job/"

static leveldb_t *spool_db;
static leveldb_options_t *spool_opts;
static leveldb_readoptions_t *spool_ropts;

int
karl_spool_open(const char *dir)
{
	char *err = NULL;

	if (fsutil_mkdirs(dir, 0750) == -1) {
		log_warn("karl: cannot create spool %s", dir);
		return -1;
	}
	spool_opts = leveldb_options_create();
	leveldb_options_set_create_if_missing(spool_opts, 1);
	spool_db = leveldb_open(spool_opts, dir, &err);
	if (err != NULL) {
		log_err("karl: cannot open spool %s: %s", dir, err);
		leveldb_free(err);
		leveldb_options_destroy(spool_opts);
		spool_opts = NULL;
		return -1;
	}
	spool_ropts = leveldb_readoptions_create();
	leveldb_readoptions_set_fill_cache(spool_ropts, 0);
	return 0;
}

void
karl_spool_close(void)
{
	if (spool_db != NULL)
		leveldb_close(spool_db);
	if (spool_ropts != NULL)
		leveldb_readoptions_destroy(spool_ropts);
	if (spool_opts != NULL)
		leveldb_options_destroy(spool_opts);
	spool_db = NULL;
	spool_ropts = NULL;
	spool_opts = NULL;
}

int64_t
karl_spool_jobs(void)
{
	leveldb_iterator_t *it;
	int64_t n = 0;

	if (spool_db == NULL)
		return 0;
	it = leveldb_create_iterator(spool_db, spool_ropts);
	for (leveldb_iter_seek(it, JOB_PREFIX, strlen(JOB_PREFIX));
	    leveldb_iter_valid(it); leveldb_iter_next(it)) {
		size_t klen;
		const char *k = leveldb_iter_key(it, &klen);

		if (klen < strlen(JOB_PREFIX) ||
		    memcmp(k, JOB_PREFIX, strlen(JOB_PREFIX)) != 0)
			break;
		n++;
	}
	leveldb_iter_destroy(it);
	return n;
}
