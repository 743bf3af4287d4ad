/*
 * conf - configuration: loading, validation, effective values, overrides.
 *
 * The file is INI: keys before the first section are daemon-wide; [store],
 * [greylist] (and later sections) group the rest. Sections named
 * "[client CIDR]", "[sender DOMAIN|ADDRESS]" and "[recipient
 * DOMAIN|ADDRESS|LOCALPART@]" are overrides: they may set any per-message
 * option (those in struct conf_policy) for mail they match. Every option is
 * declared once, in the table in conf.c, with its default and its check;
 * `greyspf config` prints the effective value of each.
 *
 * Errors: conf_load() returns NULL and writes "FILE:LINE: message".
 * Ownership: a struct conf owns all its strings; conf_free() releases them.
 * The daemon swaps whole conf objects on reload and never edits one.
 */
#ifndef GREYSPF_CONF_CONF_H
#define GREYSPF_CONF_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "spf/spf.h"
#include "util/addr.h"

/* Default configuration file (the packaged location). */
#define CONF_DEFAULT_FILE "/etc/greyspf/greyspf.conf"
/* Longest configuration line. */
#define CONF_LINE_MAX 4096
/* Most checks in a `checks` list. */
#define CONF_CHECKS_MAX 4

enum conf_check { CONF_CHECK_SPF, CONF_CHECK_GREYLIST };

struct conf_checks {
	int n;
	enum conf_check v[CONF_CHECKS_MAX];
};

/* What an SPF result leads to ([spf] mailfrom_<result>, helo_<result>). */
enum conf_spf_action {
	CONF_SPF_REJECT,
	CONF_SPF_DEFER,
	CONF_SPF_GREYLIST, /* greylist even where whitelisted otherwise */
	CONF_SPF_PREPEND,  /* add the header only */
	CONF_SPF_IGNORE,
};

enum conf_spf_header {
	CONF_HDR_RECEIVED_SPF,
	CONF_HDR_AUTH_RESULTS,
	CONF_HDR_BOTH,
	CONF_HDR_NONE,
};

/* [greylist] spf_pass: how an SPF-pass sender is greylisted. */
enum conf_spf_pass {
	CONF_SPF_PASS_KEY_BY_DOMAIN, /* key by the validated domain */
	CONF_SPF_PASS_SKIP,          /* not greylisted */
	CONF_SPF_PASS_NORMAL,        /* keyed by client network as usual */
};

/* [greylist] only_if: which mail is greylisted. */
enum conf_only_if { CONF_ONLY_IF_ALWAYS, CONF_ONLY_IF_SPF_NOT_PASS };

/* Options that may differ per message (settable in override sections). */
struct conf_policy {
	struct conf_checks checks;
	int64_t delay;        /* [greylist] delay */
	int64_t retry_window; /* [greylist] retry_window */
	int64_t max_age;      /* [greylist] max_age */
	long long auto_whitelist;
	bool learning;
	bool greylist_header;
	char *greylist_text; /* DEFER text template: %s secs, %r domain */
	enum conf_spf_pass spf_pass;
	enum conf_only_if only_if;
	/* [spf] */
	bool helo_check;
	bool test_only;
	enum conf_spf_header spf_header;
	int mailfrom_action[SPF_NRESULTS]; /* enum conf_spf_action */
	int helo_action[SPF_NRESULTS];
	char *whitelist_senders; /* domains, trusted only on SPF pass */
	char *whitelist_helo;    /* HELO names, trusted only on SPF pass */
};

enum conf_override_kind {
	CONF_OV_CLIENT,
	CONF_OV_SENDER,
	CONF_OV_RECIPIENT,
};

/* Words in an override's bitmap of the options it sets. */
#define CONF_SET_WORDS 2

/* One override section. `set` has a bit per option index in conf.c's table
 * telling which fields it sets. */
struct conf_override {
	enum conf_override_kind kind;
	char *pattern;    /* as written, lower-cased */
	struct cidr net;  /* CONF_OV_CLIENT */
	struct conf_policy policy;
	uint64_t set[CONF_SET_WORDS];
	int line;
};

enum conf_backend { CONF_BACKEND_LMDB, CONF_BACKEND_REDIS };
/* Enhanced status codes of SPF replies: RFC 7372 (5.7.23, 5.7.24, 4.7.24)
 * or RFC 7208's original ones (5.7.1, 4.4.3). */
enum conf_smtp_codes { CONF_CODES_RFC7372, CONF_CODES_CLASSIC };
enum conf_key_hash { CONF_KEY_HASH_NONE, CONF_KEY_HASH_HMAC };
enum conf_log { CONF_LOG_SYSLOG, CONF_LOG_STDERR };
/* What a valid request gets when the store fails: DUNNO lets the mail in
 * (the other checks still apply), DEFER has Postfix retry later. */
enum conf_store_error { CONF_STORE_ERROR_DUNNO, CONF_STORE_ERROR_DEFER };

struct conf {
	int refs; /* conf_ref()/conf_unref(); conf_load() returns 1 */
	char *file;
	/* daemon-wide */
	char *listen; /* comma list of inet:HOST:PORT / unix:PATH */
	long long socket_mode;
	char *socket_owner;
	char *socket_group;
	char *user;
	char *group;
	bool allow_root;
	char *hostname;
	int64_t reply_deadline;
	enum conf_log log;
	bool debug;
	long long max_connections;
	char *metrics; /* "inet:HOST:PORT" for GET /metrics, or "" */
	/* [store] */
	enum conf_backend backend;
	char *store_path;
	bool store_sync;
	enum conf_store_error on_store_error;
	char *redis_url;
	char *redis_prefix;
	int64_t redis_timeout_ms;
	enum conf_key_hash key_hash;
	char *key_secret;
	/* [greylist] that are not per message */
	long long ipv4_prefix;
	long long ipv6_prefix;
	char *whitelist_clients;    /* comma list of files */
	char *whitelist_recipients; /* comma list of files */
	char *recipient_delimiter;
	/* [dns] */
	char *dns_servers;
	int64_t dns_timeout_ms;
	bool dns_recursion;
	/* [spf] that are not per message */
	char *skip_clients; /* as written */
	struct cidr_list skip_nets; /* parsed */
	char *authserv_id;          /* "" means hostname (filled in) */
	long long max_void;
	int64_t spf_time_limit;
	enum conf_smtp_codes smtp_codes;
	/* per-message defaults and overrides */
	struct conf_policy policy;
	struct conf_override *overrides;
	size_t noverrides;
};

/*
 * Loads and validates file. Returns a new conf (caller owns: conf_free()),
 * or NULL with "FILE:LINE: message" (or "FILE: message") in err.
 */
struct conf *conf_load(const char *file, char *err, size_t errsize);

/* The defaults alone, as if from an empty file (for tests and `check`). */
struct conf *conf_defaults(void);

void conf_free(struct conf *c);

/* Reference counting, so requests in flight keep the configuration they
 * started with across a reload. conf_unref() frees at zero. */
struct conf *conf_ref(struct conf *c);
void conf_unref(struct conf *c);

/*
 * Names the options that differ between a and b but are read only at start
 * (listeners, user, store, DNS, metrics, log), comma-separated into out.
 * Returns how many differ.
 */
size_t conf_restart_changes(const struct conf *a, const struct conf *b,
			    char *out, size_t size);

/* Prints every option's effective value, postconf style, then overrides. */
void conf_print(const struct conf *c, FILE *out);

/*
 * Computes the per-message options for a message: the defaults, then the
 * matching [client] sections, then [sender], then [recipient] (later kinds
 * win; within a kind the more specific pattern wins). sender and recipient
 * are the raw addresses (any case); client may be NULL.
 */
void conf_policy_for(const struct conf *c, const struct addr *client,
		     const char *sender, const char *recipient,
		     struct conf_policy *out);

const char *conf_check_name(enum conf_check c);

#endif
