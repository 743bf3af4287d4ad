/*
 * engine - the decision for one policy request; see engine.h.
 *
 * A request becomes a job that walks the configured checks in order. The
 * greylist check is a chain of store operations (client auto-whitelist,
 * triplet, client pass count), each completing through the store's done
 * callback, so the job works the same on the embedded store (answers at the
 * end of the loop turn, after the commit) and on a remote one.
 *
 * Log lines keep tumgreyspf's wording ("Initial greylisting:" ...), each
 * with REMOTEIP, HELO, SENDER, RECIPIENT and QUEUEID escaped and bounded.
 */
#include "engine/engine.h"
#include "conf/conf.h"
#include "grey/greylist.h"
#include "grey/key.h"
#include "grey/whitelist.h"
#include "store/store.h"
#include "util/addr.h"
#include "util/log.h"
#include "util/str.h"
#include "util/xalloc.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Expired records removed per housekeeping tick (SERVER_TICK_MS apart):
 * small enough that a tick never pauses the loop noticeably. */
#define ENGINE_EXPIRE_BATCH 256
/* How often the `greyspf db whitelist` table is re-read, seconds. */
#define ENGINE_DBWL_REFRESH 60
/* Most files in one whitelist option. */
#define ENGINE_WL_FILES_MAX 32

struct engine_lists {
	struct wl *wl;
};

struct engine {
	struct event_base *base;
	struct conf *conf;
	struct engine_lists *lists;
	struct store *store;
	engine_clock_fn clock;
	void *clock_arg;
	struct cidr_list dbwl; /* networks from the store's whitelist table */
	int64_t dbwl_loaded;
	struct engine_counters counters;
};

struct job {
	struct engine *e;
	struct conf *conf; /* referenced: a reload mid-job changes nothing */
	struct engine_lists *lists;
	const struct policy_request *req;
	struct engine_msg *msg;
	engine_done_fn done;
	void *done_arg;
	struct conf_policy pol;
	struct grey_params gp;
	struct addr client;
	int check;       /* index in pol.checks of the running check */
	int64_t now;
	char prepend[GREY_HEADER_MAX];
	/* greylist state */
	char netkey[GREY_NET_MAX + 1];
	size_t netkeylen;
	unsigned char key[STORE_KEY_MAX];
	size_t keylen;
	struct grey_client_op cop;
	struct grey_triplet_op top;
};

static int64_t engine_default_clock(void *arg)
{
	(void)arg;
	return (int64_t)time(NULL);
}

/* The lists are shared by jobs in flight across a reload: count users. */
struct engine_lists_ref {
	struct engine_lists l;
	int refs;
};

static struct engine_lists *lists_ref(struct engine_lists *l)
{
	((struct engine_lists_ref *)l)->refs++;
	return l;
}

static void lists_unref(struct engine_lists *l)
{
	struct engine_lists_ref *r = (struct engine_lists_ref *)l;
	if (r != NULL && --r->refs == 0) {
		wl_free(r->l.wl);
		free(r);
	}
}

static int split_files(const char *list, char **out, size_t max, char *err,
		       size_t errsize)
{
	char item[1024];
	const char *cur = list;
	size_t n = 0;
	int rc;
	while ((rc = str_list_next(&cur, item, sizeof(item))) == 1) {
		if (n + 1 >= max) {
			snprintf(err, errsize, "more than %zu whitelist files",
				 max - 1);
			rc = -1;
			break;
		}
		out[n++] = xstrdup(item);
	}
	out[n] = NULL;
	if (rc < 0) {
		if (*err == '\0')
			snprintf(err, errsize, "whitelist file name too long");
		return -1;
	}
	return 0;
}

struct engine_lists *engine_lists_load(const struct conf *conf, char *err,
				       size_t errsize)
{
	char *cf[ENGINE_WL_FILES_MAX], *rf[ENGINE_WL_FILES_MAX];
	struct engine_lists *res = NULL;
	*err = '\0';
	cf[0] = rf[0] = NULL;
	if (split_files(conf->whitelist_clients, cf, ENGINE_WL_FILES_MAX, err,
			errsize) == 0 &&
	    split_files(conf->whitelist_recipients, rf, ENGINE_WL_FILES_MAX,
			err, errsize) == 0) {
		struct wl *wl = wl_load((const char *const *)cf,
					(const char *const *)rf, 0, err,
					errsize);
		if (wl != NULL) {
			struct engine_lists_ref *r = xcalloc(1, sizeof(*r));
			r->l.wl = wl;
			r->refs = 1;
			res = &r->l;
		}
	}
	for (size_t i = 0; cf[i]; i++)
		free(cf[i]);
	for (size_t i = 0; rf[i]; i++)
		free(rf[i]);
	return res;
}

void engine_lists_free(struct engine_lists *l)
{
	lists_unref(l);
}

struct engine *engine_new(struct event_base *base, struct conf *conf,
			  struct engine_lists *lists, struct store *store)
{
	struct engine *e = xcalloc(1, sizeof(*e));
	e->base = base;
	e->conf = conf_ref(conf);
	e->lists = lists;
	e->store = store;
	e->clock = engine_default_clock;
	e->dbwl_loaded = -ENGINE_DBWL_REFRESH;
	return e;
}

void engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	conf_unref(e->conf);
	lists_unref(e->lists);
	cidr_list_free(&e->dbwl);
	free(e);
}

void engine_reload(struct engine *e, struct conf *conf,
		   struct engine_lists *lists)
{
	conf_unref(e->conf);
	e->conf = conf_ref(conf);
	lists_unref(e->lists);
	e->lists = lists;
	e->dbwl_loaded = -ENGINE_DBWL_REFRESH; /* re-read on the next tick */
}

void engine_set_clock(struct engine *e, engine_clock_fn fn, void *arg)
{
	e->clock = fn ? fn : engine_default_clock;
	e->clock_arg = arg;
}

const struct engine_counters *engine_counters(const struct engine *e)
{
	return &e->counters;
}

/* Logs "<what>: REMOTEIP=... HELO=... SENDER=... RECIPIENT=... QUEUEID=..."
 * followed by detail. */
static void job_log(const struct job *j, const char *what, const char *detail)
{
	char ip[80], helo[LOG_UNTRUSTED_MAX], snd[LOG_UNTRUSTED_MAX],
		rcpt[LOG_UNTRUSTED_MAX], qid[64];
	const struct policy_request *r = j->req;
	log_escape(ip, sizeof(ip), r->v[POLICY_CLIENT_ADDRESS],
		   r->len[POLICY_CLIENT_ADDRESS]);
	log_escape(helo, sizeof(helo), r->v[POLICY_HELO_NAME],
		   r->len[POLICY_HELO_NAME]);
	log_escape(snd, sizeof(snd), r->v[POLICY_SENDER], r->len[POLICY_SENDER]);
	log_escape(rcpt, sizeof(rcpt), r->v[POLICY_RECIPIENT],
		   r->len[POLICY_RECIPIENT]);
	log_escape(qid, sizeof(qid), r->v[POLICY_QUEUE_ID],
		   r->len[POLICY_QUEUE_ID]);
	log_info("%s: REMOTEIP=\"%s\" HELO=\"%s\" SENDER=\"%s\" "
		 "RECIPIENT=\"%s\" QUEUEID=\"%s\"%s%s",
		 what, ip, helo, snd, rcpt, qid, detail ? "; " : "",
		 detail ? detail : "");
}

static void job_finish(struct job *j, const char *action)
{
	engine_done_fn done = j->done;
	void *arg = j->done_arg;
	conf_unref(j->conf);
	lists_unref(j->lists);
	/* The action may live in the job: answer before freeing it. */
	done(arg, action);
	free(j);
}

static void job_next_check(struct job *j);

/* A check passed (no defer/reject): go on to the next one. */
static void job_continue(struct job *j)
{
	j->check++;
	job_next_check(j);
}

static void job_store_error(struct job *j, const char *err)
{
	j->e->counters.store_errors++;
	log_warn("store error: %s; answering per on_store_error", err);
	if (j->conf->on_store_error == CONF_STORE_ERROR_DEFER) {
		job_finish(j, POLICY_DEFER " 4.3.0 Temporary greylist store "
				    "failure, please try again later");
		return;
	}
	job_continue(j);
}

static void grey_after_pass_count(void *arg, int status, const char *err)
{
	struct job *j = arg;
	if (status != 0) /* the pass itself is stored: just log */
		log_warn("store error counting a client pass: %s", err);
	else if (j->cop.whitelisted)
		log_info("client network %s auto-whitelisted after %u "
			 "passes",
			 j->netkey, j->cop.passes);
	job_continue(j);
}

static void grey_after_triplet(void *arg, int status, const char *err)
{
	struct job *j = arg;
	if (status != 0) {
		job_store_error(j, err);
		return;
	}
	const struct grey_triplet_op *t = &j->top;
	char detail[128];
	switch (t->verdict) {
	case GREY_INITIAL:
	case GREY_PENDING: {
		char action[GREY_REPLY_MAX + 1];
		if (t->verdict == GREY_INITIAL)
			j->e->counters.initial++;
		else
			j->e->counters.pending++;
		snprintf(detail, sizeof(detail), "retry in %llds, attempt %u",
			 (long long)t->wait_left, t->count);
		job_log(j,
			t->verdict == GREY_INITIAL ? "Initial greylisting"
						   : "Pending greylisting",
			detail);
		if (grey_defer_reply(j->pol.greylist_text, t->wait_left,
				     j->req->v[POLICY_RECIPIENT], action,
				     sizeof(action)) < 0)
			snprintf(action, sizeof(action),
				 GREY_DEFER_ACTION " " GREY_DEFER_CODE
						   " Greylisted");
		job_finish(j, action);
		return;
	}
	case GREY_TRAINING:
		j->e->counters.training++;
		snprintf(detail, sizeof(detail), "would %s, attempt %u",
			 t->would_defer ? "defer" : "pass", t->count);
		job_log(j, "Training greylisting", detail);
		break;
	case GREY_ALLOWED:
		j->e->counters.allowed++;
		snprintf(detail, sizeof(detail),
			 "delayed %llds, attempt %u%s",
			 (long long)t->delayed, t->count,
			 t->first_pass ? ", first pass" : "");
		job_log(j, "Allowed greylisting", detail);
		if (t->first_pass && j->pol.greylist_header &&
		    !j->msg->greylist_header_sent && j->prepend[0] == '\0' &&
		    grey_header(t->delayed, GREYSPF_VERSION,
				j->conf->hostname, j->now, j->prepend,
				sizeof(j->prepend)) > 0)
			j->msg->greylist_header_sent = true;
		break;
	}
	if (t->first_pass && j->pol.auto_whitelist > 0 &&
	    t->verdict == GREY_ALLOWED) {
		store_rmw(j->e->store, STORE_CLIENTS, j->netkey, j->netkeylen,
			  j->now, grey_client_pass_rmw, &j->cop,
			  grey_after_pass_count, j);
		return;
	}
	job_continue(j);
}

static void grey_triplet(struct job *j)
{
	j->top.params = &j->gp;
	j->top.now = j->now;
	store_rmw(j->e->store, STORE_TRIPLETS, j->key, j->keylen, j->now,
		  grey_triplet_rmw, &j->top, grey_after_triplet, j);
}

static void grey_after_client_check(void *arg, int status, const char *err)
{
	struct job *j = arg;
	if (status != 0) {
		job_store_error(j, err);
		return;
	}
	if (j->cop.whitelisted) {
		char detail[GREY_NET_MAX + 64];
		j->e->counters.auto_whitelisted++;
		snprintf(detail, sizeof(detail), "client network %s, %u passes",
			 j->netkey, j->cop.passes);
		job_log(j, "Auto-whitelisted", detail);
		job_continue(j);
		return;
	}
	grey_triplet(j);
}

static void check_greylist(struct job *j)
{
	const struct policy_request *r = j->req;
	char detail[WL_LINE_MAX + 64];

	if (r->len[POLICY_RECIPIENT] == 0) {
		/* Greylisting is per recipient: nothing to do before RCPT. */
		job_continue(j);
		return;
	}
	const struct wl_entry *w = wl_match_client(
		j->lists->wl, &j->client, r->v[POLICY_CLIENT_NAME],
		r->v[POLICY_REVERSE_CLIENT_NAME]);
	if (w == NULL && cidr_list_match(&j->e->dbwl, &j->client)) {
		j->e->counters.whitelisted++;
		job_log(j, "Whitelisted", "client in the store's whitelist");
		job_continue(j);
		return;
	}
	if (w == NULL)
		w = wl_match_recipient(j->lists->wl, r->v[POLICY_RECIPIENT]);
	if (w != NULL) {
		j->e->counters.whitelisted++;
		snprintf(detail, sizeof(detail), "%s \"%s\" (%s:%u)",
			 wl_kind_name(w->kind), w->text, w->file, w->line);
		job_log(j, "Whitelisted", detail);
		job_continue(j);
		return;
	}

	struct grey_key_conf kc;
	grey_key_conf_init(&kc);
	kc.ipv4_prefix = (int)j->conf->ipv4_prefix;
	kc.ipv6_prefix = (int)j->conf->ipv6_prefix;
	kc.delimiters = j->conf->recipient_delimiter;
	ssize_t n = grey_key_net(&kc, &j->client, j->netkey,
				 sizeof(j->netkey));
	ssize_t k = n < 0 ? -1
			  : grey_key_triplet(&kc, &j->client,
					     r->v[POLICY_SENDER],
					     r->len[POLICY_SENDER],
					     r->v[POLICY_RECIPIENT],
					     r->len[POLICY_RECIPIENT], j->key,
					     sizeof(j->key));
	if (n < 0 || k < 0) {
		/* Over-long addresses cannot be keyed: let the mail through
		 * rather than defer it forever. */
		job_log(j, "Unusable for greylisting",
			"sender or recipient too long");
		job_continue(j);
		return;
	}
	j->netkeylen = (size_t)n;
	j->keylen = (size_t)k;
	grey_params_init(&j->gp);
	j->gp.delay = j->pol.delay;
	j->gp.retry_window = j->pol.retry_window;
	j->gp.max_age = j->pol.max_age;
	j->gp.auto_whitelist = (uint32_t)j->pol.auto_whitelist;
	j->gp.learning = j->pol.learning;
	j->cop.params = &j->gp;
	j->cop.now = j->now;
	if (j->gp.auto_whitelist > 0) {
		store_rmw(j->e->store, STORE_CLIENTS, j->netkey, j->netkeylen,
			  j->now, grey_client_check_rmw, &j->cop,
			  grey_after_client_check, j);
		return;
	}
	grey_triplet(j);
}

static void job_next_check(struct job *j)
{
	if (j->check >= j->pol.checks.n) {
		if (j->prepend[0] != '\0') {
			/* The reply writer caps the action at
			 * POLICY_ACTION_MAX. */
			char action[sizeof(POLICY_PREPEND) + GREY_HEADER_MAX];
			snprintf(action, sizeof(action), POLICY_PREPEND " %s",
				 j->prepend);
			job_finish(j, action);
		} else {
			job_finish(j, POLICY_DUNNO);
		}
		return;
	}
	switch (j->pol.checks.v[j->check]) {
	case CONF_CHECK_GREYLIST:
		check_greylist(j);
		return;
	case CONF_CHECK_SPF:
		/* SPF joins the chain with the SPF engine. */
		job_continue(j);
		return;
	}
}

void engine_decide(struct engine *e, const struct policy_request *req,
		   struct engine_msg *msg, engine_done_fn done, void *arg)
{
	e->counters.requests++;
	/* A new instance means Postfix finished the previous message. */
	if (req->len[POLICY_INSTANCE] == 0 ||
	    strncmp(msg->instance, req->v[POLICY_INSTANCE],
		    sizeof(msg->instance)) != 0) {
		memset(msg, 0, sizeof(*msg));
		snprintf(msg->instance, sizeof(msg->instance), "%s",
			 req->v[POLICY_INSTANCE]);
	}
	struct addr client;
	if (addr_parse(req->v[POLICY_CLIENT_ADDRESS], &client) != 0) {
		char esc[80];
		e->counters.bad_requests++;
		log_warn("request without a usable client_address \"%s\"; "
			 "answering %s",
			 log_escape(esc, sizeof(esc),
				    req->v[POLICY_CLIENT_ADDRESS],
				    req->len[POLICY_CLIENT_ADDRESS]),
			 POLICY_DUNNO);
		done(arg, POLICY_DUNNO);
		return;
	}
	struct job *j = xcalloc(1, sizeof(*j));
	j->e = e;
	j->conf = conf_ref(e->conf);
	j->lists = lists_ref(e->lists);
	j->req = req;
	j->msg = msg;
	j->done = done;
	j->done_arg = arg;
	j->client = client;
	j->now = e->clock(e->clock_arg);
	conf_policy_for(j->conf, &client, req->v[POLICY_SENDER],
			req->v[POLICY_RECIPIENT], &j->pol);
	job_next_check(j);
}

static int dbwl_visit(void *arg, const void *key, size_t keylen,
		      const struct store_rec *rec)
{
	struct cidr_list *l = arg;
	char text[CIDR_STRLEN + 1];
	struct cidr c;
	(void)rec;
	if (keylen == 0 || keylen >= sizeof(text))
		return 0;
	memcpy(text, key, keylen);
	text[keylen] = '\0';
	if (cidr_parse(text, &c, false) == 0)
		cidr_list_add(l, &c);
	return 0;
}

void engine_tick(struct engine *e)
{
	char err[256];
	int64_t now = e->clock(e->clock_arg);
	size_t removed = 0;

	if (store_expire(e->store, now, ENGINE_EXPIRE_BATCH, &removed, err,
			 sizeof(err)) != 0)
		log_warn("expiry: %s", err);
	else if (removed > 0)
		log_debug("expired %zu records", removed);

	if (now - e->dbwl_loaded >= ENGINE_DBWL_REFRESH) {
		struct cidr_list fresh = {0};
		if (store_foreach(e->store, STORE_WHITELIST, dbwl_visit, &fresh,
				  err, sizeof(err)) == 0) {
			cidr_list_free(&e->dbwl);
			e->dbwl = fresh;
		} else {
			cidr_list_free(&fresh);
			log_warn("reading the store's whitelist: %s", err);
		}
		e->dbwl_loaded = now;
	}
}
