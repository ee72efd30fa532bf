/* SPDX-License-Identifier: MIT */
/*
 * config.h - the typed configuration of the whole system.
 *
 * One file (default /etc/groups/groups.conf) configures every daemon and
 * command: "key = value" lines, '#' comments, blank lines.  Every key is
 * declared once in config.c's table with its type, default, bounds and
 * one-line documentation (docs/config.md is generated from it with
 * `groupsadmin config-doc`).  Unknown keys, duplicate keys, bad values and
 * out-of-range numbers are errors that name the file and line.
 *
 * String values may contain ${var_dir}, expanded after loading.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdio.h>

struct config {
	/* paths and identity */
	char	*var_dir;
	char	*crash_dir;
	char	*secret_file;
	char	*templates_dir;
	char	*user;
	char	*domain;
	char	*public_url;
	/* logging */
	char	*log_level;
	int	 log_queue;
	/* inter-daemon HTTP */
	char	*listen_host;
	long	 http_max_body;
	int	 http_threads;
	int	 http_timeout_ms;
	int	 debug_endpoints;
	/* database */
	char	*db_conninfo;
	int	 db_pool;
	/* errord */
	int	 errord_port;
	char	*errord_dir;
	long	 errord_rotate_size;
	int	 errord_keep_files;
	int	 errord_keep_days;
	int	 errord_ring;
	int	 errord_sync;
	int	 errord_heartbeat;
	/* web */
	int	 web_port;
	int	 web_public_port;
	/* smtpd */
	int	 smtpd_port;
	int	 smtpd_smtp_port;
	int	 smtp_public_port;
	long	 smtpd_max_message;
	char	*smtpd_xclient_hosts;
	char	*smtpd_hostname;
	char	*smtpd_tls_cert;
	char	*smtpd_tls_key;
	int	 smtpd_max_rcpts;
	int	 smtpd_max_conns;
	int	 smtpd_max_conns_per_ip;
	int	 smtpd_max_errors;
	int	 smtpd_cmd_timeout;
	int	 smtpd_data_timeout;
	int	 smtpd_session_deadline;
	int	 smtpd_data_deadline;
	int	 smtpd_max_junk;
	/* DNS (DMARC lookups, MX lookups) */
	char	*dns_resolver;
	int	 dns_timeout_ms;
	int	 dns_cache_entries;
	/* messageserver */
	int	 messageserver_port;
	int	 messageserver_fanout_threads;
	int	 messageserver_outbox_lease;
	/* karl */
	int	 karl_port;
	char	*karl_spool_dir;
	char	*karl_transport;
	char	*karl_maildir;
	char	*karl_relay_host;
	int	 karl_relay_port;
	char	*karl_relay_tls;
	char	*karl_relay_ca_file;
	char	*karl_relay_user;
	char	*karl_relay_password_file;
	char	*karl_helo;
	int	 karl_concurrency;
	int	 karl_domain_concurrency;
	int	 karl_workers;
	int	 karl_smtp_timeout;
	int	 karl_retry_min;
	int	 karl_retry_max;
	int	 karl_max_age;
	char	*dkim_keys;
	int	 bounce_soft_days;
	int	 bounce_probes;
	int	 bounce_probe_days;
	int	 bounce_event_days;
	char	*forward_rules;
	int	 confirm_days;

	/* Not keys: derived when loaded. */
	char	*path;		/* file it came from, or NULL */
	char	*secret;	/* contents of secret_file, never printed */
};

/* The configuration of this process, filled by config_load. */
extern struct config cfg;

/* config_defaults - fill c with the documented defaults. */
void	 config_defaults(struct config *c);
/* config_load - defaults, then the file at path (NULL: defaults only), then
 * expansion and cross-checks.  On error writes a one-line reason naming the
 * file and line to err and returns -1.  Does not read the secret. */
int	 config_load(struct config *c, const char *path, char *err,
	    size_t errlen);
/* config_parse - like config_load but from a string (tests, fuzzing). */
int	 config_parse(struct config *c, const char *text, size_t len,
	    const char *name, char *err, size_t errlen);
/* config_load_secret - read secret_file into c->secret. 0 or -1 (err). */
int	 config_load_secret(struct config *c, char *err, size_t errlen);
/* config_print - "key = value" for every key, in table order. */
void	 config_print(const struct config *c, FILE *);
/* config_print_doc - Markdown table of keys, types, defaults, docs. */
void	 config_print_doc(FILE *);
/* config_get - the effective value of key as a string (allocated), or NULL
 * for an unknown key. */
char	*config_get(const struct config *c, const char *key);
/* config_free - free the strings of c (not c itself). */
void	 config_free(struct config *c);
/* config_url - "http://listen_host:port" for a daemon port (allocated). */
char	*config_url(const struct config *c, int port);

#endif
