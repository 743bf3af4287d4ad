/*
 * db - `greyspf db`: inspect and manage the greylist store.
 *
 *   list      [--table T] [--client CIDR] [--sender S] [--recipient R]
 *   stats
 *   delete    --client CIDR | --sender S | --recipient R (any combination)
 *   whitelist add|remove CIDR...  |  whitelist list
 *   purge     [--all]            expired records (or every record)
 *   dump                         JSON lines on stdout (backup, migration)
 *   load                         JSON lines from stdin
 *
 * Filters: --client matches triplets whose client network lies inside the
 * given network (or contains the given address); --sender and --recipient
 * match a case-insensitive substring. Reads use a read-only store handle so
 * they are safe while the daemon runs; writes go through LMDB's (or
 * Redis's) own locking.
 */
#include "cli/cli.h"
#include "conf/conf.h"
#include "grey/key.h"
#include "server/privdrop.h"
#include "store/store.h"
#include "util/addr.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct db_filter {
	bool has_client;
	struct cidr client;
	const char *sender;
	const char *recipient;
	int table; /* -1: the default for the command */
	bool all;
};

static const char *const table_names[STORE_NTABLES] = {
	"triplets", "clients", "whitelist"};

static int table_by_name(const char *s)
{
	for (int i = 0; i < STORE_NTABLES; i++)
		if (strcasecmp(s, table_names[i]) == 0)
			return i;
	return -1;
}

static bool substr_ci(const char *hay, size_t haylen, const char *needle)
{
	size_t n = strlen(needle);
	if (n == 0)
		return true;
	for (size_t i = 0; i + n <= haylen; i++)
		if (strncasecmp(hay + i, needle, n) == 0)
			return true;
	return false;
}

/* Does the network text (as stored, "192.0.2.0/24" or "spf:dom") fall in
 * the filter network, or contain the filter address? */
static bool net_matches(const struct db_filter *f, const char *net,
			size_t netlen)
{
	char buf[GREY_NET_MAX + 1];
	struct cidr c;
	if (netlen >= sizeof(buf))
		return false;
	memcpy(buf, net, netlen);
	buf[netlen] = '\0';
	if (cidr_parse(buf, &c, false) != 0)
		return false;
	if (c.net.family != f->client.net.family)
		return false;
	int p = c.prefix < f->client.prefix ? c.prefix : f->client.prefix;
	return addr_match_prefix(&c.net, &f->client.net, p);
}

static bool record_matches(const struct db_filter *f, enum store_table t,
			   const void *key, size_t keylen)
{
	if (t != STORE_TRIPLETS) {
		if (f->has_client && !net_matches(f, key, keylen))
			return false;
		return f->sender == NULL && f->recipient == NULL
			       ? true
			       : false;
	}
	struct grey_key_parts p;
	if (grey_key_split(key, keylen, &p) != 0)
		return !f->has_client && !f->sender && !f->recipient;
	if (f->has_client && !net_matches(f, p.net, p.netlen))
		return false;
	if (f->sender && !substr_ci(p.sender, p.senderlen, f->sender))
		return false;
	if (f->recipient && !substr_ci(p.rcpt, p.rcptlen, f->recipient))
		return false;
	return true;
}

static void fmt_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (t <= 0 || gmtime_r(&tt, &tm) == NULL) {
		snprintf(buf, size, "-");
		return;
	}
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

struct list_ctx {
	const struct db_filter *f;
	enum store_table t;
	size_t shown;
	int64_t now;
};

static int list_visit(void *arg, const void *key, size_t keylen,
		      const struct store_rec *r)
{
	struct list_ctx *c = arg;
	if (!record_matches(c->f, c->t, key, keylen))
		return 0;
	char k[GREY_KEY_PRINT_MAX], fs[32], ls[32], ex[32];
	if (c->t == STORE_TRIPLETS) {
		/* Not a triplet key (Redis with key_hash = hmac stores a
		 * digest): show the raw bytes, escaped. */
		if (grey_key_format(key, keylen, k, sizeof(k)) < 0)
			log_escape(k, sizeof(k), key, keylen);
	} else {
		snprintf(k, sizeof(k), "%.*s", (int)keylen,
			 (const char *)key);
	}
	fmt_time(r->first_seen, fs, sizeof(fs));
	fmt_time(r->last_seen, ls, sizeof(ls));
	fmt_time(r->expires, ex, sizeof(ex));
	const char *state = "";
	if (c->t == STORE_TRIPLETS)
		state = r->passed ? "passed" : "pending";
	printf("%s  first=%s last=%s expires=%s count=%u passed=%u%s%s\n", k,
	       fs, ls, ex, r->count, r->passed, *state ? " " : "", state);
	c->shown++;
	return 0;
}

struct del_ctx {
	const struct db_filter *f;
	enum store_table t;
	int64_t now;
	/* Keys to delete, collected first: no writes during iteration. */
	unsigned char **keys;
	size_t *lens;
	size_t n, cap;
};

static int collect_visit(void *arg, const void *key, size_t keylen,
			 const struct store_rec *r)
{
	struct del_ctx *c = arg;
	bool take;
	(void)r;
	if (c->f == NULL) /* purge --all */
		take = true;
	else
		take = record_matches(c->f, c->t, key, keylen);
	if (!take)
		return 0;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->keys = xreallocarray(c->keys, c->cap, sizeof(*c->keys));
		c->lens = xreallocarray(c->lens, c->cap, sizeof(*c->lens));
	}
	c->keys[c->n] = xmalloc(keylen);
	memcpy(c->keys[c->n], key, keylen);
	c->lens[c->n++] = keylen;
	return 0;
}

static int delete_collected(struct store *st, struct del_ctx *c, size_t *done,
			    char *err, size_t errsize)
{
	int rc = 0;
	for (size_t i = 0; i < c->n; i++) {
		bool found;
		if (rc == 0 && store_del(st, c->t, c->keys[i], c->lens[i],
					 &found, err, errsize) != 0)
			rc = -1;
		else if (rc == 0 && found)
			(*done)++;
		free(c->keys[i]);
	}
	free(c->keys);
	free(c->lens);
	c->keys = NULL;
	c->lens = NULL;
	c->n = c->cap = 0;
	return rc;
}

static int dump_visit(void *arg, const void *key, size_t keylen,
		      const struct store_rec *r)
{
	enum store_table t = *(enum store_table *)arg;
	struct grey_key_parts p;
	printf("{\"table\":\"%s\",", table_names[t]);
	if (t == STORE_TRIPLETS && grey_key_split(key, keylen, &p) == 0) {
		printf("\"net\":");
		json_write_string(stdout, p.net, p.netlen);
		printf(",\"sender\":");
		json_write_string(stdout, p.sender, p.senderlen);
		printf(",\"recipient\":");
		json_write_string(stdout, p.rcpt, p.rcptlen);
	} else {
		printf("\"key\":");
		json_write_string(stdout, key, keylen);
	}
	printf(",\"first_seen\":%lld,\"last_seen\":%lld,\"expires\":%lld,"
	       "\"count\":%u,\"passed\":%u}\n",
	       (long long)r->first_seen, (long long)r->last_seen,
	       (long long)r->expires, r->count, r->passed);
	return 0;
}

/* A string member without NUL bytes (\u0000 would cut or shift the NUL
 * separated triplet key). */
static bool json_cstring(const struct json_member *m)
{
	return m != NULL && m->is_string && strlen(m->str) == m->len;
}

/* A network as the daemon keys clients: an address or CIDR network, or
 * (triplets and clients) an SPF domain "spf:example.com". */
static bool valid_net(const char *s, bool spf_ok)
{
	struct cidr c;
	size_t pl = strlen(GREY_KEY_SPF_PREFIX);
	if (spf_ok && strncmp(s, GREY_KEY_SPF_PREFIX, pl) == 0)
		return s[pl] != '\0';
	return cidr_parse(s, &c, false) == 0;
}

static int load_line(struct store *st, const char *line, char *err,
		     size_t errsize)
{
	struct json_object o;
	if (json_parse_object(line, &o, err, errsize) != 0)
		return -1;
	const struct json_member *t = json_get(&o, "table");
	int table = t && t->is_string ? table_by_name(t->str) : -1;
	if (table < 0) {
		snprintf(err, errsize, "missing or unknown \"table\"");
		return -1;
	}
	unsigned char key[STORE_KEY_MAX];
	size_t keylen;
	const struct json_member *k = json_get(&o, "key");
	if (table == STORE_TRIPLETS && k == NULL) {
		const struct json_member *n = json_get(&o, "net"),
					 *s = json_get(&o, "sender"),
					 *r = json_get(&o, "recipient");
		if (!json_cstring(n) || !json_cstring(s) || !json_cstring(r)) {
			snprintf(err, errsize,
				 "a triplet needs net, sender, recipient "
				 "(strings without NUL)");
			return -1;
		}
		if (!valid_net(n->str, true)) {
			snprintf(err, errsize, "bad \"net\"");
			return -1;
		}
		ssize_t kl = grey_key_join(n->str, s->str, r->str, key,
					   sizeof(key));
		if (kl < 0) {
			snprintf(err, errsize, "triplet key too long");
			return -1;
		}
		keylen = (size_t)kl;
	} else {
		if (!json_cstring(k) || k->len == 0 || k->len > sizeof(key) ||
		    (table != STORE_TRIPLETS &&
		     !valid_net(k->str, table == STORE_CLIENTS))) {
			snprintf(err, errsize, "missing or bad \"key\"");
			return -1;
		}
		memcpy(key, k->str, k->len);
		keylen = k->len;
	}
	struct store_rec rec = {0};
	static const char *const fields[] = {"first_seen", "last_seen",
					     "expires", "count", "passed"};
	long long v[5];
	for (int i = 0; i < 5; i++) {
		const struct json_member *m = json_get(&o, fields[i]);
		/* count and passed are 32-bit in the record. */
		if (m == NULL || m->is_string || m->num < 0 ||
		    (i >= 3 && m->num > (long long)UINT32_MAX)) {
			snprintf(err, errsize, "missing or bad \"%s\"",
				 fields[i]);
			return -1;
		}
		v[i] = m->num;
	}
	rec.first_seen = v[0];
	rec.last_seen = v[1];
	rec.expires = v[2];
	rec.count = (uint32_t)v[3];
	rec.passed = (uint32_t)v[4];
	return store_put(st, (enum store_table)table, key, keylen, &rec, err,
			 errsize);
}

static void db_usage(FILE *out)
{
	fprintf(out,
		"usage: greyspf db COMMAND [-c FILE] [OPTIONS]\n\n"
		"  list [--table triplets|clients|whitelist] [--client CIDR]\n"
		"       [--sender TEXT] [--recipient TEXT]\n"
		"  stats\n"
		"  delete [--table T] --client CIDR | --sender TEXT | "
		"--recipient TEXT\n"
		"  whitelist add CIDR...  |  whitelist remove CIDR...  |  "
		"whitelist list\n"
		"  purge [--all]          remove expired records (--all: "
		"every record)\n"
		"  dump                   all records as JSON lines on stdout\n"
		"  load                   records as JSON lines from stdin\n");
}

/*
 * Run by root, a write would create the LMDB files owned by root, and the
 * daemon, running as `user`, could then not open its own store (e.g. a
 * `db whitelist add` before the first start). So do what `serve` does:
 * create the store directory for `user` (writes only) and become `user`.
 */
static int db_become_user(const struct conf *c, bool ro, char *err,
			  size_t errsize)
{
	if (geteuid() != 0 || c->backend != CONF_BACKEND_LMDB ||
	    c->user[0] == '\0')
		return 0;
	uid_t uid;
	gid_t gid;
	if (privdrop_lookup(c->user, c->group, &uid, &gid, err, errsize) != 0)
		return -1;
	if (!ro) {
		if (mkdir(c->store_path, 0750) == 0) {
			if (chown(c->store_path, uid, gid) != 0) {
				snprintf(err, errsize, "chown %s: %s",
					 c->store_path, strerror(errno));
				return -1;
			}
		} else if (errno != EEXIST) {
			snprintf(err, errsize, "%s: %s", c->store_path,
				 strerror(errno));
			return -1;
		}
	}
	return privdrop_to(uid, gid, err, errsize);
}

int cmd_db(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"client", required_argument, NULL, 'C'},
		{"sender", required_argument, NULL, 'S'},
		{"recipient", required_argument, NULL, 'R'},
		{"table", required_argument, NULL, 'T'},
		{"all", no_argument, NULL, 'a'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		db_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *sub = argv[1];
	const char *file = NULL;
	struct db_filter f = {.table = -1};
	int ch;
	optind = 1;
	argc--;
	argv++;
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 'C':
			if (cidr_parse(optarg, &f.client, true) != 0) {
				fprintf(stderr,
					"greyspf db: bad --client \"%s\"\n",
					optarg);
				return 2;
			}
			f.has_client = true;
			break;
		case 'S':
			f.sender = optarg;
			break;
		case 'R':
			f.recipient = optarg;
			break;
		case 'T':
			f.table = table_by_name(optarg);
			if (f.table < 0) {
				fprintf(stderr,
					"greyspf db: unknown table \"%s\"\n",
					optarg);
				return 2;
			}
			break;
		case 'a':
			f.all = true;
			break;
		case 'h':
			db_usage(stdout);
			return 0;
		default:
			return 2;
		}
	}
	static const char *const subs[] = {"list", "stats", "delete",
					   "whitelist", "purge", "dump",
					   "load", NULL};
	bool known = false;
	for (int i = 0; subs[i]; i++)
		known = known || strcmp(sub, subs[i]) == 0;
	if (!known) {
		fprintf(stderr, "greyspf db: unknown command \"%s\"\n", sub);
		db_usage(stderr);
		return 2;
	}
	char err[1024];
	struct conf *c = cli_load_conf(file, err, sizeof(err));
	if (c == NULL) {
		fprintf(stderr, "greyspf: %s\n", err);
		return 1;
	}
	bool ro = strcmp(sub, "list") == 0 || strcmp(sub, "stats") == 0 ||
		  strcmp(sub, "dump") == 0 ||
		  (strcmp(sub, "whitelist") == 0 && optind < argc &&
		   strcmp(argv[optind], "list") == 0);
	if (db_become_user(c, ro, err, sizeof(err)) != 0) {
		fprintf(stderr, "greyspf: %s\n", err);
		conf_unref(c);
		return 1;
	}
	struct store *st = cli_open_store(c, NULL, ro, err, sizeof(err));
	if (st == NULL) {
		fprintf(stderr, "greyspf: store: %s\n", err);
		conf_unref(c);
		return 1;
	}
	int status = 0;
	int64_t now = (int64_t)time(NULL);
	enum store_table t =
		f.table >= 0 ? (enum store_table)f.table : STORE_TRIPLETS;

	if (strcmp(sub, "list") == 0) {
		struct list_ctx lc = {&f, t, 0, now};
		if (store_foreach(st, t, list_visit, &lc, err, sizeof(err)) !=
		    0)
			status = 1;
		else
			fprintf(stderr, "%zu record(s)\n", lc.shown);
	} else if (strcmp(sub, "stats") == 0) {
		struct store_stats s;
		if (store_stats(st, &s, err, sizeof(err)) != 0) {
			status = 1;
		} else {
			printf("backend: %s\n", st->ops->name);
			for (int i = 0; i < STORE_NTABLES; i++)
				printf("%s: %zu\n", table_names[i],
				       s.records[i]);
			printf("bytes: %zu\n", s.bytes);
		}
	} else if (strcmp(sub, "delete") == 0) {
		if (!f.has_client && !f.sender && !f.recipient) {
			fprintf(stderr, "greyspf db delete: give --client, "
					"--sender or --recipient\n");
			status = 2;
		} else {
			struct del_ctx dc = {.f = &f, .t = t, .now = now};
			size_t n = 0;
			if (store_foreach(st, t, collect_visit, &dc, err,
					  sizeof(err)) != 0 ||
			    delete_collected(st, &dc, &n, err, sizeof(err)) !=
				    0)
				status = 1;
			else
				printf("deleted %zu record(s)\n", n);
		}
	} else if (strcmp(sub, "whitelist") == 0) {
		const char *verb = optind < argc ? argv[optind] : "";
		if (strcmp(verb, "list") == 0) {
			struct db_filter none = {.table = -1};
			struct list_ctx lc = {&none, STORE_WHITELIST, 0, now};
			if (store_foreach(st, STORE_WHITELIST, list_visit, &lc,
					  err, sizeof(err)) != 0)
				status = 1;
		} else if ((strcmp(verb, "add") == 0 ||
			    strcmp(verb, "remove") == 0) &&
			   optind + 1 < argc) {
			for (int i = optind + 1; i < argc && status == 0; i++) {
				struct cidr cd;
				char text[CIDR_STRLEN];
				if (cidr_parse(argv[i], &cd, true) != 0) {
					fprintf(stderr,
						"greyspf db whitelist: bad "
						"network \"%s\"\n",
						argv[i]);
					status = 2;
					break;
				}
				cidr_format(&cd, text, sizeof(text));
				bool found = true;
				int rc;
				if (verb[0] == 'a') {
					/* Never expires; removed by hand. */
					struct store_rec r = {
						.first_seen = now,
						.last_seen = now,
						.expires = INT64_MAX,
						.count = 0,
						.passed = 0};
					rc = store_put(st, STORE_WHITELIST,
						       text, strlen(text), &r,
						       err, sizeof(err));
				} else {
					rc = store_del(st, STORE_WHITELIST,
						       text, strlen(text),
						       &found, err,
						       sizeof(err));
				}
				if (rc != 0)
					status = 1;
				else if (!found)
					fprintf(stderr, "%s: not listed\n",
						text);
				else
					printf("%s %s\n",
					       verb[0] == 'a' ? "added"
							      : "removed",
					       text);
			}
		} else {
			db_usage(stderr);
			status = 2;
		}
	} else if (strcmp(sub, "purge") == 0) {
		size_t n = 0;
		/* Expired records are invisible to store_foreach(), so only
		 * the backend's own sweep can find them: one unbounded pass. */
		if (!f.all && store_expire(st, now, SIZE_MAX, &n, err,
					   sizeof(err)) != 0)
			status = 1;
		for (int i = 0; i < STORE_NTABLES && status == 0 && f.all;
		     i++) {
			struct del_ctx dc = {.f = NULL,
					     .t = (enum store_table)i,
					     .now = -1};
			if (store_foreach(st, (enum store_table)i,
					  collect_visit, &dc, err,
					  sizeof(err)) != 0 ||
			    delete_collected(st, &dc, &n, err, sizeof(err)) !=
				    0)
				status = 1;
		}
		if (status == 0)
			printf("purged %zu record(s)\n", n);
	} else if (strcmp(sub, "dump") == 0) {
		for (int i = 0; i < STORE_NTABLES && status == 0; i++) {
			enum store_table tt = (enum store_table)i;
			if (store_foreach(st, tt, dump_visit, &tt, err,
					  sizeof(err)) != 0)
				status = 1;
		}
	} else if (strcmp(sub, "load") == 0) {
		char *line = NULL;
		size_t cap = 0;
		ssize_t n;
		size_t lineno = 0, loaded = 0;
		while ((n = getline(&line, &cap, stdin)) > 0) {
			lineno++;
			if (n <= 1)
				continue;
			if (load_line(st, line, err, sizeof(err)) != 0) {
				/* Loading is not atomic: say what is in. */
				fprintf(stderr,
					"greyspf db load: line %zu: %s; %zu "
					"record(s) loaded before it\n",
					lineno, err, loaded);
				err[0] = '\0'; /* reported */
				status = 1;
				break;
			}
			loaded++;
		}
		free(line);
		if (status == 0)
			printf("loaded %zu record(s)\n", loaded);
	}
	if (status == 1 && err[0] != '\0')
		fprintf(stderr, "greyspf db %s: %s\n", sub, err);
	if (store_flush(st, err, sizeof(err)) != 0 && status == 0) {
		fprintf(stderr, "greyspf db %s: %s\n", sub, err);
		status = 1;
	}
	store_close(st);
	conf_unref(c);
	return status;
}
