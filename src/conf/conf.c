/*
 * conf - configuration loading, validation and printing; see conf.h.
 *
 * Every option is one row of conf_options[]: section, name, type, where it
 * lives, its default (as text, parsed by the same code as the file) and its
 * range. Rows flagged OPT_POLICY live in struct conf_policy and may appear in
 * override sections. Nothing here logs; errors are returned as text.
 */
#include "conf/conf.h"
#include "grey/greylist.h"
#include "util/str.h"
#include "util/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum opt_type {
	OPT_STR,
	OPT_BOOL,
	OPT_DURATION,
	OPT_MSECS, /* a duration with millisecond units allowed ("500ms") */
	OPT_INT,
	OPT_MODE,
	OPT_ENUM,
	OPT_CHECKS,
};

#define OPT_POLICY 1u   /* a struct conf_policy field: overridable */
#define OPT_NONEMPTY 2u /* an empty value is an error */
#define OPT_RESTART 4u  /* read once at start: a reload cannot change it */

struct opt {
	const char *section; /* "" for daemon-wide */
	const char *name;
	enum opt_type type;
	unsigned flags;
	size_t offset; /* in struct conf, or struct conf_policy if OPT_POLICY */
	const char *def;
	long long min, max;       /* OPT_INT, OPT_DURATION */
	const char *const *names; /* OPT_ENUM, index = value */
};

static const char *const log_names[] = {"syslog", "stderr", NULL};
static const char *const backend_names[] = {"lmdb", "redis", NULL};
static const char *const store_error_names[] = {"dunno", "defer", NULL};
static const char *const key_hash_names[] = {"none", "hmac", NULL};
static const char *const spf_action_names[] = {"reject", "defer", "greylist",
					       "prepend", "ignore", NULL};
static const char *const spf_header_names[] = {
	"received-spf", "authentication-results", "both", "none", NULL};
static const char *const spf_pass_names[] = {"key-by-domain", "skip",
					     "normal", NULL};
static const char *const only_if_names[] = {"always", "spf-not-pass", NULL};
static const char *const smtp_codes_names[] = {"rfc7372", "classic", NULL};

#define C(f) offsetof(struct conf, f)
#define P(f) offsetof(struct conf_policy, f)
#define DAY 86400LL

static const struct opt conf_options[] = {
	{"", "listen", OPT_STR, OPT_NONEMPTY | OPT_RESTART, C(listen), "inet:127.0.0.1:10023",
	 0, 0, NULL},
	{"", "socket_mode", OPT_MODE, OPT_RESTART, C(socket_mode), "0660", 0, 0777, NULL},
	{"", "socket_owner", OPT_STR, OPT_RESTART, C(socket_owner), "", 0, 0, NULL},
	{"", "socket_group", OPT_STR, OPT_RESTART, C(socket_group), "", 0, 0, NULL},
	{"", "user", OPT_STR, OPT_RESTART, C(user), "greyspf", 0, 0, NULL},
	{"", "group", OPT_STR, OPT_RESTART, C(group), "", 0, 0, NULL},
	{"", "allow_root", OPT_BOOL, OPT_RESTART, C(allow_root), "no", 0, 0, NULL},
	{"", "hostname", OPT_STR, 0, C(hostname), "", 0, 0, NULL},
	/* Below Postfix's smtpd_policy_service_timeout (100s). */
	{"", "reply_deadline", OPT_DURATION, 0, C(reply_deadline), "90", 1, 99,
	 NULL},
	{"", "log", OPT_ENUM, OPT_RESTART, C(log), "syslog", 0, 0, log_names},
	{"", "debug", OPT_BOOL, 0, C(debug), "no", 0, 0, NULL},
	/* Postfix's default_process_limit is 100 smtpd processes, each with
	 * one policy connection; leave ample room for several instances. */
	{"", "max_connections", OPT_INT, 0, C(max_connections), "4096", 1,
	 1000000, NULL},
	{"", "metrics", OPT_STR, OPT_RESTART, C(metrics), "", 0, 0, NULL},
	{"", "checks", OPT_CHECKS, OPT_POLICY, P(checks), "spf, greylist", 0, 0,
	 NULL},

	{"store", "backend", OPT_ENUM, OPT_RESTART, C(backend), "lmdb", 0, 0,
	 backend_names},
	{"store", "path", OPT_STR, OPT_NONEMPTY | OPT_RESTART, C(store_path),
	 "/var/lib/greyspf", 0, 0, NULL},
	/* no: sync once a second (see src/store/lmdb.c, DURABILITY). */
	{"store", "sync", OPT_BOOL, OPT_RESTART, C(store_sync), "no", 0, 0, NULL},
	{"store", "on_store_error", OPT_ENUM, 0, C(on_store_error), "dunno", 0,
	 0, store_error_names},
	{"store", "redis", OPT_STR, OPT_RESTART, C(redis_url), "redis://127.0.0.1:6379/0",
	 0, 0, NULL},
	{"store", "redis_prefix", OPT_STR, OPT_RESTART, C(redis_prefix), "greyspf:", 0, 0,
	 NULL},
	{"store", "redis_timeout", OPT_MSECS, OPT_RESTART, C(redis_timeout_ms), "1s", 1,
	 60000, NULL},
	{"store", "key_hash", OPT_ENUM, OPT_RESTART, C(key_hash), "none", 0, 0,
	 key_hash_names},
	{"store", "key_secret", OPT_STR, OPT_RESTART, C(key_secret), "", 0, 0, NULL},

	{"greylist", "delay", OPT_DURATION, OPT_POLICY, P(delay), "5m", 0,
	 DAY, NULL},
	{"greylist", "retry_window", OPT_DURATION, OPT_POLICY, P(retry_window),
	 "2d", 1, 30 * DAY, NULL},
	{"greylist", "max_age", OPT_DURATION, OPT_POLICY, P(max_age), "35d", 1,
	 3650 * DAY, NULL},
	{"greylist", "auto_whitelist", OPT_INT, OPT_POLICY, P(auto_whitelist),
	 "5", 0, 1000000, NULL},
	{"greylist", "learning", OPT_BOOL, OPT_POLICY, P(learning), "no", 0, 0,
	 NULL},
	{"greylist", "header", OPT_BOOL, OPT_POLICY, P(greylist_header), "no",
	 0, 0, NULL},
	{"greylist", "text", OPT_STR, OPT_POLICY | OPT_NONEMPTY,
	 P(greylist_text), "Greylisted, please try again in %s seconds", 0, 0,
	 NULL},
	{"greylist", "spf_pass", OPT_ENUM, OPT_POLICY, P(spf_pass),
	 "key-by-domain", 0, 0, spf_pass_names},
	{"greylist", "only_if", OPT_ENUM, OPT_POLICY, P(only_if), "always", 0, 0,
	 only_if_names},
	{"greylist", "ipv4_prefix", OPT_INT, 0, C(ipv4_prefix), "24", 0, 32,
	 NULL},
	{"greylist", "ipv6_prefix", OPT_INT, 0, C(ipv6_prefix), "64", 0, 128,
	 NULL},
	{"greylist", "whitelist_clients", OPT_STR, 0, C(whitelist_clients), "",
	 0, 0, NULL},
	{"greylist", "whitelist_recipients", OPT_STR, 0,
	 C(whitelist_recipients), "", 0, 0, NULL},
	{"greylist", "recipient_delimiter", OPT_STR, 0, C(recipient_delimiter),
	 "+", 0, 0, NULL},

	{"dns", "servers", OPT_STR, OPT_RESTART, C(dns_servers), "", 0, 0, NULL},
	{"dns", "timeout", OPT_MSECS, OPT_RESTART, C(dns_timeout_ms), "5s", 100, 60000,
	 NULL},
	{"dns", "recursion", OPT_BOOL, OPT_RESTART, C(dns_recursion), "no", 0, 0, NULL},

	/* Loopback never has SPF worth checking; backup MX hosts and
	 * trusted forwarders belong here too. */
	{"spf", "skip_clients", OPT_STR, 0, C(skip_clients), "127.0.0.0/8, ::1",
	 0, 0, NULL},
	{"spf", "authserv_id", OPT_STR, 0, C(authserv_id), "", 0, 0, NULL},
	/* RFC 7208 section 4.6.4: "SHOULD" be 2. */
	{"spf", "max_void", OPT_INT, 0, C(max_void), "2", 0, 100, NULL},
	/* RFC 7208 section 4.6.4: at least 20 s; below reply_deadline. */
	{"spf", "time_limit", OPT_DURATION, 0, C(spf_time_limit), "20", 1, 80,
	 NULL},
	{"spf", "smtp_codes", OPT_ENUM, 0, C(smtp_codes), "rfc7372", 0, 0,
	 smtp_codes_names},
	{"spf", "helo_check", OPT_BOOL, OPT_POLICY, P(helo_check), "yes", 0, 0,
	 NULL},
	{"spf", "test_only", OPT_BOOL, OPT_POLICY, P(test_only), "no", 0, 0,
	 NULL},
	{"spf", "header", OPT_ENUM, OPT_POLICY, P(spf_header), "received-spf",
	 0, 0, spf_header_names},
	{"spf", "whitelist_senders", OPT_STR, OPT_POLICY, P(whitelist_senders),
	 "", 0, 0, NULL},
	{"spf", "whitelist_helo", OPT_STR, OPT_POLICY, P(whitelist_helo), "", 0,
	 0, NULL},
	{"spf", "mailfrom_none", OPT_ENUM, OPT_POLICY, P(mailfrom_action[SPF_NONE]),
	 "prepend", 0, 0, spf_action_names},
	{"spf", "mailfrom_neutral", OPT_ENUM, OPT_POLICY, P(mailfrom_action[SPF_NEUTRAL]),
	 "prepend", 0, 0, spf_action_names},
	{"spf", "mailfrom_pass", OPT_ENUM, OPT_POLICY, P(mailfrom_action[SPF_PASS]),
	 "prepend", 0, 0, spf_action_names},
	{"spf", "mailfrom_fail", OPT_ENUM, OPT_POLICY, P(mailfrom_action[SPF_FAIL]),
	 "reject", 0, 0, spf_action_names},
	{"spf", "mailfrom_softfail", OPT_ENUM, OPT_POLICY, P(mailfrom_action[SPF_SOFTFAIL]),
	 "prepend", 0, 0, spf_action_names},
	{"spf", "mailfrom_temperror", OPT_ENUM, OPT_POLICY, P(mailfrom_action[SPF_TEMPERROR]),
	 "defer", 0, 0, spf_action_names},
	{"spf", "mailfrom_permerror", OPT_ENUM, OPT_POLICY, P(mailfrom_action[SPF_PERMERROR]),
	 "prepend", 0, 0, spf_action_names},
	{"spf", "helo_none", OPT_ENUM, OPT_POLICY, P(helo_action[SPF_NONE]),
	 "prepend", 0, 0, spf_action_names},
	{"spf", "helo_neutral", OPT_ENUM, OPT_POLICY, P(helo_action[SPF_NEUTRAL]),
	 "prepend", 0, 0, spf_action_names},
	{"spf", "helo_pass", OPT_ENUM, OPT_POLICY, P(helo_action[SPF_PASS]),
	 "prepend", 0, 0, spf_action_names},
	{"spf", "helo_fail", OPT_ENUM, OPT_POLICY, P(helo_action[SPF_FAIL]),
	 "reject", 0, 0, spf_action_names},
	{"spf", "helo_softfail", OPT_ENUM, OPT_POLICY, P(helo_action[SPF_SOFTFAIL]),
	 "prepend", 0, 0, spf_action_names},
	{"spf", "helo_temperror", OPT_ENUM, OPT_POLICY, P(helo_action[SPF_TEMPERROR]),
	 "defer", 0, 0, spf_action_names},
	{"spf", "helo_permerror", OPT_ENUM, OPT_POLICY, P(helo_action[SPF_PERMERROR]),
	 "prepend", 0, 0, spf_action_names},
};

#define NOPTIONS (sizeof(conf_options) / sizeof(conf_options[0]))
_Static_assert(NOPTIONS <= 64 * CONF_SET_WORDS,
	       "grow CONF_SET_WORDS for the override bitmap");

static bool set_has(const uint64_t *set, size_t k)
{
	return (set[k / 64] >> (k % 64)) & 1u;
}

static const char *const check_names[] = {"spf", "greylist"};

const char *conf_check_name(enum conf_check c)
{
	return check_names[c];
}

static void *opt_ptr(const struct opt *o, struct conf *c,
		     struct conf_policy *p)
{
	if (o->flags & OPT_POLICY)
		return (char *)p + o->offset;
	return (char *)c + o->offset;
}

static int parse_checks(const char *v, struct conf_checks *out, char *err,
			size_t errsize)
{
	char item[32];
	const char *cur = v;
	int rc;
	out->n = 0;
	while ((rc = str_list_next(&cur, item, sizeof(item))) == 1) {
		int found = -1;
		for (int i = 0; i < 2; i++)
			if (strcasecmp(item, check_names[i]) == 0)
				found = i;
		if (found < 0) {
			snprintf(err, errsize,
				 "unknown check \"%s\" (spf, greylist)", item);
			return -1;
		}
		for (int i = 0; i < out->n; i++)
			if ((int)out->v[i] == found) {
				snprintf(err, errsize, "check \"%s\" twice",
					 item);
				return -1;
			}
		out->v[out->n++] = (enum conf_check)found;
	}
	if (rc < 0) {
		snprintf(err, errsize, "bad checks list");
		return -1;
	}
	return 0;
}

/* Sets one option from text; writes a message (without location) to err. */
static int opt_set(const struct opt *o, void *dst, const char *v, char *err,
		   size_t errsize)
{
	long long n;
	int64_t d;
	bool b;

	if ((o->flags & OPT_NONEMPTY) && *v == '\0') {
		snprintf(err, errsize, "%s must not be empty", o->name);
		return -1;
	}
	switch (o->type) {
	case OPT_STR:
		free(*(char **)dst);
		*(char **)dst = xstrdup(v);
		return 0;
	case OPT_BOOL:
		if (str_parse_bool(v, &b) != 0) {
			snprintf(err, errsize, "%s: \"%s\" is not yes or no",
				 o->name, v);
			return -1;
		}
		*(bool *)dst = b;
		return 0;
	case OPT_DURATION:
		if (str_parse_duration(v, &d) != 0 || d < o->min ||
		    d > o->max) {
			snprintf(err, errsize,
				 "%s: \"%s\" is not a duration from %llds to "
				 "%llds (e.g. 300, 5m, 2h, 2d)",
				 o->name, v, o->min, o->max);
			return -1;
		}
		*(int64_t *)dst = d;
		return 0;
	case OPT_MSECS: {
		size_t vl = strlen(v);
		if (vl > 2 && strcasecmp(v + vl - 2, "ms") == 0) {
			char num[32];
			snprintf(num, sizeof(num), "%.*s", (int)(vl - 2), v);
			if (str_parse_int(num, 0, o->max, &n) != 0)
				n = -1;
		} else if (str_parse_duration(v, &d) == 0 &&
			   d <= o->max / 1000) {
			n = d * 1000;
		} else {
			n = -1;
		}
		if (n < o->min || n > o->max) {
			snprintf(err, errsize,
				 "%s: \"%s\" is not a duration from %lldms to "
				 "%llds (e.g. 500ms, 1s)",
				 o->name, v, o->min, o->max / 1000);
			return -1;
		}
		*(int64_t *)dst = n;
		return 0;
	}
	case OPT_INT:
		if (str_parse_int(v, o->min, o->max, &n) != 0) {
			snprintf(err, errsize,
				 "%s: \"%s\" is not a number from %lld to %lld",
				 o->name, v, o->min, o->max);
			return -1;
		}
		*(long long *)dst = n;
		return 0;
	case OPT_MODE: {
		char *end;
		errno = 0;
		long m = strtol(v, &end, 8);
		if (*v == '\0' || *end != '\0' || errno || m < 0 ||
		    m > o->max) {
			snprintf(err, errsize, "%s: \"%s\" is not an octal mode",
				 o->name, v);
			return -1;
		}
		*(long long *)dst = m;
		return 0;
	}
	case OPT_ENUM:
		for (int i = 0; o->names[i]; i++)
			if (strcasecmp(v, o->names[i]) == 0) {
				*(int *)dst = i;
				return 0;
			}
		snprintf(err, errsize, "%s: unknown value \"%s\"", o->name, v);
		return -1;
	case OPT_CHECKS:
		return parse_checks(v, dst, err, errsize);
	}
	return -1;
}

static void policy_free(struct conf_policy *p)
{
	free(p->greylist_text);
	free(p->whitelist_senders);
	free(p->whitelist_helo);
	p->greylist_text = p->whitelist_senders = p->whitelist_helo = NULL;
}

static void policy_copy(struct conf_policy *dst, const struct conf_policy *src)
{
	*dst = *src;
	dst->greylist_text = src->greylist_text ? xstrdup(src->greylist_text)
						: NULL;
	dst->whitelist_senders =
		src->whitelist_senders ? xstrdup(src->whitelist_senders) : NULL;
	dst->whitelist_helo =
		src->whitelist_helo ? xstrdup(src->whitelist_helo) : NULL;
}

static struct conf *conf_new_defaults(void)
{
	struct conf *c = xcalloc(1, sizeof(*c));
	char err[256];
	c->refs = 1;
	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct opt *o = &conf_options[i];
		if (opt_set(o, opt_ptr(o, c, &c->policy), o->def, err,
			    sizeof(err)) != 0)
			abort(); /* a bad default is a programming error */
	}
	return c;
}

static const struct opt *opt_find(const char *section, const char *name)
{
	for (size_t i = 0; i < NOPTIONS; i++)
		if (strcmp(conf_options[i].section, section) == 0 &&
		    strcmp(conf_options[i].name, name) == 0)
			return &conf_options[i];
	return NULL;
}

/* In an override section: "name" if unique among per-message options, or
 * "section.name". Returns the index or -1 (err set). */
static int opt_find_policy(const char *key, char *err, size_t errsize)
{
	const char *dot = strchr(key, '.');
	int found = -1, count = 0;
	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct opt *o = &conf_options[i];
		if (!(o->flags & OPT_POLICY))
			continue;
		bool match;
		if (dot)
			match = strlen(o->section) == (size_t)(dot - key) &&
				strncmp(o->section, key,
					(size_t)(dot - key)) == 0 &&
				strcmp(o->name, dot + 1) == 0;
		else
			match = strcmp(o->name, key) == 0;
		if (match) {
			found = (int)i;
			count++;
		}
	}
	if (count == 1)
		return found;
	if (count > 1)
		snprintf(err, errsize,
			 "\"%s\" is ambiguous here: write section.%s", key,
			 key);
	else
		snprintf(err, errsize,
			 "\"%s\" cannot be set in an override section", key);
	return -1;
}

static int parse_override_header(const char *sect, struct conf_override *ov,
				 char *err, size_t errsize)
{
	static const char *const kinds[] = {"client", "sender", "recipient"};
	for (int k = 0; k < 3; k++) {
		size_t kl = strlen(kinds[k]);
		if (strncasecmp(sect, kinds[k], kl) != 0 ||
		    !isspace((unsigned char)sect[kl]))
			continue;
		char *raw = xstrdup(sect + kl);
		char *copy = xstrdup(str_trim(raw));
		free(raw);
		ov->kind = (enum conf_override_kind)k;
		ov->pattern = str_lower(copy);
		if (*ov->pattern == '\0') {
			snprintf(err, errsize, "[%s] needs a pattern",
				 kinds[k]);
			return -1;
		}
		if (ov->kind == CONF_OV_CLIENT &&
		    cidr_parse(ov->pattern, &ov->net, false) != 0) {
			snprintf(err, errsize,
				 "[client %s]: not an address or network",
				 ov->pattern);
			return -1;
		}
		if (ov->kind != CONF_OV_CLIENT &&
		    strpbrk(ov->pattern, " \t\"<>") != NULL) {
			snprintf(err, errsize, "[%s %s]: not a domain or address",
				 kinds[k], ov->pattern);
			return -1;
		}
		return 0;
	}
	return 1; /* not an override section */
}

/* Copies the options ov sets into out; strings are duplicated when own
 * (out then owns them) and borrowed from ov otherwise. */
static void policy_apply(struct conf_policy *out,
			 const struct conf_override *ov, bool own)
{
	for (size_t k = 0; k < NOPTIONS; k++) {
		if (!set_has(ov->set, k))
			continue;
		const struct opt *o = &conf_options[k];
		const void *from = (const char *)&ov->policy + o->offset;
		void *to = (char *)out + o->offset;
		switch (o->type) {
		case OPT_STR:
			if (own)
				free(*(char **)to);
			*(char **)to = own ? xstrdup(*(char *const *)from)
					   : *(char *const *)from;
			break;
		case OPT_CHECKS:
			memcpy(to, from, sizeof(struct conf_checks));
			break;
		case OPT_BOOL:
			*(bool *)to = *(const bool *)from;
			break;
		case OPT_DURATION:
			*(int64_t *)to = *(const int64_t *)from;
			break;
		case OPT_ENUM:
			*(int *)to = *(const int *)from;
			break;
		default:
			*(long long *)to = *(const long long *)from;
		}
	}
}

static const char *const known_sections[] = {"store", "greylist", "dns",
						 "spf", NULL};

static int conf_validate(struct conf *c, char *msg, size_t msgsize);

struct conf *conf_defaults(void)
{
	char msg[256];
	struct conf *c = conf_new_defaults();
	if (conf_validate(c, msg, sizeof(msg)) != 0)
		abort(); /* the defaults are valid by construction */
	return c;
}

static int conf_fail(char *err, size_t errsize, const char *file, int line,
		     const char *msg)
{
	if (line > 0)
		snprintf(err, errsize, "%s:%d: %s", file, line, msg);
	else
		snprintf(err, errsize, "%s: %s", file, msg);
	return -1;
}

static int conf_validate(struct conf *c, char *msg, size_t msgsize)
{
	if (c->hostname[0] == '\0') {
		char host[256];
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		free(c->hostname);
		c->hostname = xstrdup(host);
	}
	if (strpbrk(c->hostname, " \t\r\n;\"()") != NULL) {
		snprintf(msg, msgsize, "hostname: \"%s\" is not a host name",
			 c->hostname);
		return -1;
	}
	/* In the defaults and in every override (each holds its merged
	 * values): texts Postfix would otherwise receive with '?' in place of
	 * 8-bit bytes, and timers that would never let mail through. */
	for (size_t i = 0; i <= c->noverrides; i++) {
		const struct conf_policy *p =
			i == 0 ? &c->policy : &c->overrides[i - 1].policy;
		if (grey_defer_template_check(p->greylist_text) != 0) {
			snprintf(msg, msgsize,
				 "[greylist] text: only printable ASCII is "
				 "allowed");
			return -1;
		}
		struct grey_params gp;
		const char *why;
		grey_params_init(&gp);
		gp.delay = p->delay;
		gp.retry_window = p->retry_window;
		gp.max_age = p->max_age;
		if (grey_params_check(&gp, &why) != 0) {
			if (i == 0)
				snprintf(msg, msgsize, "[greylist]: %s", why);
			else
				snprintf(msg, msgsize, "section at line %d: %s",
					 c->overrides[i - 1].line, why);
			return -1;
		}
	}
	if (c->spf_time_limit >= c->reply_deadline) {
		/* Otherwise the deadline answers DUNNO before SPF can give its
		 * temperror, and mail passes unchecked. */
		snprintf(msg, msgsize,
			 "[spf] time_limit (%llds) must be below reply_deadline "
			 "(%llds)",
			 (long long)c->spf_time_limit,
			 (long long)c->reply_deadline);
		return -1;
	}
	if (c->authserv_id[0] == '\0') {
		free(c->authserv_id);
		c->authserv_id = xstrdup(c->hostname);
	}
	if (strpbrk(c->authserv_id, " \t\r\n;\"()") != NULL) {
		snprintf(msg, msgsize, "authserv_id: \"%s\" is not a host name",
			 c->authserv_id);
		return -1;
	}
	{
		const char *cur = c->skip_clients;
		char net[CIDR_STRLEN + 8];
		int r;
		cidr_list_free(&c->skip_nets);
		while ((r = str_list_next(&cur, net, sizeof(net))) == 1) {
			struct cidr cd;
			if (cidr_parse(net, &cd, false) != 0) {
				snprintf(msg, msgsize,
					 "skip_clients: \"%s\" is not an "
					 "address or network",
					 net);
				return -1;
			}
			cidr_list_add(&c->skip_nets, &cd);
		}
		if (r < 0) {
			snprintf(msg, msgsize, "skip_clients: item too long");
			return -1;
		}
	}
	if (c->key_hash == CONF_KEY_HASH_HMAC && c->key_secret[0] == '\0') {
		snprintf(msg, msgsize, "key_hash = hmac needs a key_secret");
		return -1;
	}
	if (c->metrics[0] != '\0' && strncmp(c->metrics, "inet:", 5) != 0) {
		snprintf(msg, msgsize, "metrics: \"%s\" is not inet:HOST:PORT",
			 c->metrics);
		return -1;
	}
	/* The listen list is checked for shape here; binding is the
	 * server's. */
	const char *cur = c->listen;
	char item[512];
	int rc;
	while ((rc = str_list_next(&cur, item, sizeof(item))) == 1) {
		if (strncmp(item, "inet:", 5) != 0 &&
		    strncmp(item, "unix:", 5) != 0) {
			snprintf(msg, msgsize,
				 "listen: \"%s\" is neither inet:HOST:PORT "
				 "nor unix:PATH",
				 item);
			return -1;
		}
	}
	if (rc < 0) {
		snprintf(msg, msgsize, "listen: an endpoint is too long");
		return -1;
	}
	return 0;
}

struct conf *conf_load(const char *file, char *err, size_t errsize)
{
	FILE *fp = fopen(file, "r");
	if (fp == NULL) {
		snprintf(err, errsize, "%s: %s", file, strerror(errno));
		return NULL;
	}
	struct conf *c = conf_new_defaults();
	c->file = xstrdup(file);
	char line[CONF_LINE_MAX + 2];
	char section[CONF_LINE_MAX] = "";
	char msg[CONF_LINE_MAX / 2];
	struct conf_override *ov = NULL;
	int lineno = 0;
	int failed = 0;

	while (fgets(line, sizeof(line), fp) != NULL) {
		lineno++;
		size_t n = strlen(line);
		if (n > CONF_LINE_MAX && line[n - 1] != '\n') {
			failed = conf_fail(err, errsize, file, lineno,
					   "line too long");
			break;
		}
		char *s = str_trim(line);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *close = strchr(s, ']');
			char *after = close ? str_trim(close + 1) : NULL;
			if (close == NULL ||
			    (*after != '\0' && *after != '#' &&
			     *after != ';')) {
				failed = conf_fail(err, errsize, file, lineno,
						   "malformed section header");
				break;
			}
			*close = '\0';
			char *name = str_trim(s + 1);
			ov = NULL;
			struct conf_override tmp = {0};
			int r = parse_override_header(name, &tmp, msg,
						      sizeof(msg));
			if (r == 0) {
				for (size_t i = 0; i < c->noverrides; i++) {
					const struct conf_override *o =
						&c->overrides[i];
					if (o->kind == tmp.kind &&
					    strcmp(o->pattern, tmp.pattern) ==
						    0) {
						snprintf(msg, sizeof(msg),
							 "section [%s] repeats "
							 "the one at line %d",
							 name, o->line);
						r = -1;
					}
				}
			}
			if (r < 0) {
				free(tmp.pattern);
				failed = conf_fail(err, errsize, file, lineno,
						   msg);
				break;
			}
			if (r == 0) {
				c->overrides = xreallocarray(
					c->overrides, c->noverrides + 1,
					sizeof(*c->overrides));
				ov = &c->overrides[c->noverrides++];
				*ov = tmp;
				ov->line = lineno;
				policy_copy(&ov->policy, &c->policy);
				snprintf(section, sizeof(section), "%s", name);
				continue;
			}
			bool known = false;
			for (int i = 0; known_sections[i]; i++)
				if (strcasecmp(name, known_sections[i]) == 0)
					known = true;
			if (!known) {
				snprintf(msg, sizeof(msg),
					 "unknown section [%s]", name);
				failed = conf_fail(err, errsize, file, lineno,
						   msg);
				break;
			}
			snprintf(section, sizeof(section), "%s",
				 str_lower(name));
			continue;
		}
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			failed = conf_fail(err, errsize, file, lineno,
					   "expected name = value");
			break;
		}
		*eq = '\0';
		char *key = str_lower(str_trim(s));
		char *val = eq + 1;
		/* An inline comment starts at " ;" or " #". */
		for (char *p = val; *p; p++)
			if ((*p == ';' || *p == '#') &&
			    (p == val || isspace((unsigned char)p[-1]))) {
				*p = '\0';
				break;
			}
		val = str_trim(val);
		const struct opt *o;
		void *dst;
		if (ov != NULL) {
			int idx = opt_find_policy(key, msg, sizeof(msg));
			if (idx < 0) {
				failed = conf_fail(err, errsize, file, lineno,
						   msg);
				break;
			}
			o = &conf_options[idx];
			dst = (char *)&ov->policy + o->offset;
			ov->set[idx / 64] |= 1ull << (idx % 64);
		} else {
			o = opt_find(section, key);
			if (o == NULL) {
				snprintf(msg, sizeof(msg),
					 "unknown option \"%.100s\"%s%.100s%s", key,
					 *section ? " in [" : "", section,
					 *section ? "]" : "");
				failed = conf_fail(err, errsize, file, lineno,
						   msg);
				break;
			}
			dst = opt_ptr(o, c, &c->policy);
		}
		if (opt_set(o, dst, val, msg, sizeof(msg)) != 0) {
			failed = conf_fail(err, errsize, file, lineno, msg);
			break;
		}
	}
	if (!failed && ferror(fp))
		failed = conf_fail(err, errsize, file, 0, strerror(errno));
	fclose(fp);
	if (!failed) {
		/* Overrides start from the final defaults, whatever the order
		 * of sections in the file: re-apply only what each sets. */
		for (size_t i = 0; i < c->noverrides; i++) {
			struct conf_override *o2 = &c->overrides[i];
			struct conf_policy merged;
			policy_copy(&merged, &c->policy);
			policy_apply(&merged, o2, true);
			policy_free(&o2->policy);
			o2->policy = merged;
		}
		if (conf_validate(c, msg, sizeof(msg)) != 0)
			failed = conf_fail(err, errsize, file, 0, msg);
	}
	if (failed) {
		conf_free(c);
		return NULL;
	}
	return c;
}

void conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct opt *o = &conf_options[i];
		if (o->type == OPT_STR && !(o->flags & OPT_POLICY))
			free(*(char **)opt_ptr(o, c, &c->policy));
	}
	policy_free(&c->policy);
	cidr_list_free(&c->skip_nets);
	for (size_t i = 0; i < c->noverrides; i++) {
		free(c->overrides[i].pattern);
		policy_free(&c->overrides[i].policy);
	}
	free(c->overrides);
	free(c->file);
	free(c);
}

struct conf *conf_ref(struct conf *c)
{
	c->refs++;
	return c;
}

void conf_unref(struct conf *c)
{
	if (c != NULL && --c->refs == 0)
		conf_free(c);
}

static void opt_print(const struct opt *o, const void *src, FILE *out)
{
	char buf[64];
	switch (o->type) {
	case OPT_STR:
		fprintf(out, "%s", *(char *const *)src);
		break;
	case OPT_BOOL:
		fprintf(out, "%s", *(const bool *)src ? "yes" : "no");
		break;
	case OPT_DURATION:
		fprintf(out, "%s",
			str_format_duration(*(const int64_t *)src, buf,
					    sizeof(buf)));
		break;
	case OPT_MSECS: {
		int64_t ms = *(const int64_t *)src;
		if (ms % 1000 == 0)
			fprintf(out, "%s",
				str_format_duration(ms / 1000, buf,
						    sizeof(buf)));
		else
			fprintf(out, "%lldms", (long long)ms);
		break;
	}
	case OPT_INT:
		fprintf(out, "%lld", *(const long long *)src);
		break;
	case OPT_MODE:
		fprintf(out, "%04llo", *(const long long *)src);
		break;
	case OPT_ENUM:
		fprintf(out, "%s", o->names[*(const int *)src]);
		break;
	case OPT_CHECKS: {
		const struct conf_checks *ch = src;
		for (int i = 0; i < ch->n; i++)
			fprintf(out, "%s%s", i ? ", " : "",
				check_names[ch->v[i]]);
		break;
	}
	}
}

size_t conf_restart_changes(const struct conf *a, const struct conf *b,
			    char *out, size_t size)
{
	size_t n = 0, o = 0;
	if (size > 0)
		out[0] = '\0';
	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct opt *opt = &conf_options[i];
		if (!(opt->flags & OPT_RESTART))
			continue;
		char *va = NULL, *vb = NULL;
		size_t la = 0, lb = 0;
		FILE *fa = open_memstream(&va, &la);
		FILE *fb = open_memstream(&vb, &lb);
		if (fa == NULL || fb == NULL)
			abort(); /* out of memory */
		opt_print(opt, opt_ptr(opt, (struct conf *)a,
				       (struct conf_policy *)&a->policy),
			  fa);
		opt_print(opt, opt_ptr(opt, (struct conf *)b,
				       (struct conf_policy *)&b->policy),
			  fb);
		fclose(fa);
		fclose(fb);
		if (la != lb || memcmp(va, vb, la) != 0) {
			int w = snprintf(out + o, o < size ? size - o : 0,
					 "%s%s%s%s", n ? ", " : "",
					 opt->section, *opt->section ? "." : "",
					 opt->name);
			if (w > 0 && o + (size_t)w < size)
				o += (size_t)w;
			n++;
		}
		free(va);
		free(vb);
	}
	return n;
}

void conf_print(const struct conf *c, FILE *out)
{
	const char *cur = NULL;
	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct opt *o = &conf_options[i];
		if (cur == NULL || strcmp(cur, o->section) != 0) {
			if (*o->section)
				fprintf(out, "\n[%s]\n", o->section);
			cur = o->section;
		}
		fprintf(out, "%s = ", o->name);
		opt_print(o, opt_ptr(o, (struct conf *)c,
				     (struct conf_policy *)&c->policy),
			  out);
		fputc('\n', out);
	}
	static const char *const kinds[] = {"client", "sender", "recipient"};
	for (size_t i = 0; i < c->noverrides; i++) {
		const struct conf_override *ov = &c->overrides[i];
		fprintf(out, "\n[%s %s]\n", kinds[ov->kind], ov->pattern);
		for (size_t k = 0; k < NOPTIONS; k++) {
			if (!set_has(ov->set, k))
				continue;
			const struct opt *o = &conf_options[k];
			fprintf(out, "%s%s%s = ", o->section,
				*o->section ? "." : "", o->name);
			opt_print(o, (const char *)&ov->policy + o->offset,
				  out);
			fputc('\n', out);
		}
	}
}

/* Specificity of a sender/recipient pattern against an address, or -1:
 * an exact address beats a local part ("postmaster@"), which beats a
 * domain, which beats a parent domain. */
static int addr_pattern_score(const char *pattern, const char *address,
			      const char *delims)
{
	char buf[512];
	const char *at = strrchr(address, '@');
	size_t plen = strlen(pattern);

	/* Compare without the address extension ("user+ext@" is "user@"),
	 * and take an unqualified "postmaster" (RFC 5321 section 4.1.1.3)
	 * as a local part. */
	if (at != NULL && delims != NULL && *delims != '\0') {
		size_t llen = (size_t)(at - address);
		size_t cut = strcspn(address, delims);
		if (cut > 0 && cut < llen &&
		    strlen(address) - llen + cut < sizeof(buf)) {
			memcpy(buf, address, cut);
			snprintf(buf + cut, sizeof(buf) - cut, "%s", at);
			address = buf;
			at = strrchr(address, '@');
		}
	}
	const char *domain = at ? at + 1 : "";
	size_t llen = at ? (size_t)(at - address) : strlen(address);

	if (at != NULL && strcasecmp(pattern, address) == 0)
		return 3000;
	if (plen > 0 && pattern[plen - 1] == '@') {
		if (llen + 1 == plen && strncasecmp(pattern, address, llen) == 0)
			return 2000;
		return -1;
	}
	if (strchr(pattern, '@') != NULL || *domain == '\0')
		return -1;
	if (strcasecmp(pattern, domain) == 0)
		return 1000 + (int)plen;
	/* "example.org" also covers "sub.example.org"; ".example.org" only
	 * subdomains. */
	size_t dlen = strlen(domain);
	const char *suffix = pattern[0] == '.' ? pattern + 1 : pattern;
	size_t slen = strlen(suffix);
	if (dlen > slen && domain[dlen - slen - 1] == '.' &&
	    strcasecmp(domain + dlen - slen, suffix) == 0)
		return (int)slen;
	return -1;
}

/* Most override sections one message can match; more are ignored (a
 * configuration with that many nested patterns is a mistake). */
#define CONF_MATCHES_MAX 32

void conf_policy_for(const struct conf *c, const struct addr *client,
		     const char *sender, const char *recipient,
		     struct conf_policy *out)
{
	*out = c->policy; /* strings borrowed from c */
	for (int kind = CONF_OV_CLIENT; kind <= CONF_OV_RECIPIENT; kind++) {
		const struct conf_override *m[CONF_MATCHES_MAX];
		int score[CONF_MATCHES_MAX];
		size_t n = 0;
		for (size_t i = 0; i < c->noverrides && n < CONF_MATCHES_MAX;
		     i++) {
			const struct conf_override *ov = &c->overrides[i];
			int sc = -1;
			if ((int)ov->kind != kind)
				continue;
			if (kind == CONF_OV_CLIENT) {
				if (client && cidr_match(&ov->net, client))
					sc = ov->net.prefix;
			} else {
				const char *a = kind == CONF_OV_SENDER
							? sender
							: recipient;
				if (a && *a)
					sc = addr_pattern_score(
						ov->pattern, a,
						c->recipient_delimiter);
			}
			if (sc < 0)
				continue;
			/* insertion sort, least specific first */
			size_t k = n++;
			while (k > 0 && score[k - 1] > sc) {
				m[k] = m[k - 1];
				score[k] = score[k - 1];
				k--;
			}
			m[k] = ov;
			score[k] = sc;
		}
		/* Each option comes from the most specific matching section
		 * that sets it. */
		for (size_t k = 0; k < n; k++)
			policy_apply(out, m[k], false);
	}
}
