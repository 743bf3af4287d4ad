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
#include "dns/resolver.h"
#include "engine/spfrun.h"
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
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Expired records removed per housekeeping tick (SERVER_TICK_MS apart):
 * small enough that a tick never pauses the loop noticeably. */
#define ENGINE_EXPIRE_BATCH 256
/* How often the `greyspf db whitelist` table is re-read, seconds. */
#define ENGINE_DBWL_REFRESH 60
/* Seconds between two "store error" log lines during an outage. */
#define ENGINE_ERROR_LOG_INTERVAL 10
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
	struct dns_resolver *dns;
	engine_clock_fn clock;
	void *clock_arg;
	struct cidr_list dbwl; /* networks from the store's whitelist table */
	int64_t store_error_logged;   /* when the last store error was logged */
	uint64_t store_errors_logged; /* counters.store_errors at that time */
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
	/* SPF */
	int spf_pending;       /* evaluations still running */
	bool force_greylist;   /* an SPF action asked for greylisting */
	bool spf_ran;          /* the SPF check came before greylisting */
	bool greylist_ran;
	bool skip_greylist;    /* SPF decided greylisting is not needed */
	const char *skip_why;
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
			  struct engine_lists *lists, struct store *store,
			  struct dns_resolver *dns)
{
	struct engine *e = xcalloc(1, sizeof(*e));
	e->base = base;
	e->conf = conf_ref(conf);
	e->lists = lists;
	e->store = store;
	e->dns = dns;
	e->clock = engine_default_clock;
	e->dbwl_loaded = -ENGINE_DBWL_REFRESH;
	e->store_error_logged = -ENGINE_ERROR_LOG_INTERVAL;
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

/* Queues a header for this message (dropped if the queue is full). */
static void msg_queue_header(struct engine_msg *m, const char *h)
{
	if (m->nheaders >= ENGINE_HEADERS_MAX || *h == '\0')
		return;
	snprintf(m->headers[m->nheaders++], sizeof(m->headers[0]), "%s", h);
}

/* The final answer when no check deferred or rejected: the next queued
 * header as a PREPEND (Postfix ignores PREPEND after END-OF-MESSAGE), or
 * DUNNO. */
static void job_finish_ok(struct job *j)
{
	struct engine_msg *m = j->msg;
	bool eom = strcmp(j->req->v[POLICY_PROTOCOL_STATE], "END-OF-MESSAGE") ==
		   0;
	if (m->nheaders > 0 && !eom) {
		char action[sizeof(POLICY_PREPEND) + SPF_HEADER_MAX];
		snprintf(action, sizeof(action), POLICY_PREPEND " %s",
			 m->headers[0]);
		m->nheaders--;
		memmove(m->headers[0], m->headers[1],
			sizeof(m->headers[0]) * (size_t)m->nheaders);
		job_finish(j, action);
		return;
	}
	job_finish(j, POLICY_DUNNO);
}

/* A check passed (no defer/reject): go on to the next one. */
static void job_continue(struct job *j)
{
	j->check++;
	job_next_check(j);
}

static void job_store_error(struct job *j, const char *err)
{
	struct engine *e = j->e;
	e->counters.store_errors++;
	/* During an outage every request fails: log the first error, then
	 * at most one line per ENGINE_ERROR_LOG_INTERVAL with the count. */
	int64_t now = e->clock(e->clock_arg);
	if (now - e->store_error_logged >= ENGINE_ERROR_LOG_INTERVAL) {
		uint64_t n = e->counters.store_errors - e->store_errors_logged;
		log_warn("store error: %s; answering per on_store_error "
			 "(%llu request(s) since the last such line)",
			 err, (unsigned long long)n);
		e->store_error_logged = now;
		e->store_errors_logged = e->counters.store_errors;
	}
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
		    !j->msg->greylist_header_queued) {
			char h[GREY_HEADER_MAX];
			if (grey_header(t->delayed, GREYSPF_VERSION,
					j->conf->hostname, j->now, h,
					sizeof(h)) > 0) {
				msg_queue_header(j->msg, h);
				j->msg->greylist_header_queued = true;
			}
		}
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

/* Does an SPF pass from this term vouch for a sender pool rather than
 * for (nearly) everyone? "+all"/"all" and networks wider than /16 (IPv4)
 * or /32 (IPv6) do not. */
static bool spf_mechanism_narrow(const char *m)
{
	if (*m == '+')
		m++;
	if (strcasecmp(m, "all") == 0 || *m == '\0')
		return false;
	bool v4 = strncasecmp(m, "ip4:", 4) == 0;
	bool v6 = strncasecmp(m, "ip6:", 4) == 0;
	const char *slash = strchr(m, '/');
	if ((v4 || v6) && slash != NULL) {
		long long p;
		if (str_parse_int(slash + 1, 0, 128, &p) != 0)
			return false;
		return p >= (v4 ? 16 : 32);
	}
	return true;
}

static void check_greylist(struct job *j)
{
	const struct policy_request *r = j->req;
	char detail[WL_LINE_MAX + 64];

	j->greylist_ran = true;
	/* Greylisting is per recipient, at RCPT: Postfix also sends the
	 * recipient at DATA and END-OF-MESSAGE when there is just one, and
	 * deferring there (after the data) would count the triplet twice. */
	if (r->len[POLICY_RECIPIENT] == 0 ||
	    (r->len[POLICY_PROTOCOL_STATE] > 0 &&
	     strcmp(r->v[POLICY_PROTOCOL_STATE], "RCPT") != 0)) {
		job_continue(j);
		return;
	}
	if (j->skip_greylist && !j->force_greylist) {
		j->e->counters.whitelisted++;
		job_log(j, "Not greylisted", j->skip_why);
		job_continue(j);
		return;
	}
	const struct wl_entry *w = j->force_greylist ? NULL : wl_match_client(
		j->lists->wl, &j->client, r->v[POLICY_CLIENT_NAME],
		r->v[POLICY_REVERSE_CLIENT_NAME]);
	if (w == NULL && !j->force_greylist &&
	    cidr_list_match(&j->e->dbwl, &j->client)) {
		j->e->counters.whitelisted++;
		job_log(j, "Whitelisted", "client in the store's whitelist");
		job_continue(j);
		return;
	}
	if (w == NULL && !j->force_greylist)
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
	/* SPF-aware keying: a sender whose domain passed SPF is keyed by that
	 * domain, so a retry from another address of its pool (or the other
	 * IP family) matches. Not when the pass came from "all" or a very
	 * wide network: that record authorises (nearly) anyone. The
	 * auto-whitelist stays keyed by the client network either way. */
	const struct engine_spf *sp = &j->msg->spf;
	bool by_domain = j->spf_ran && sp->done && sp->mailfrom == SPF_PASS &&
			 j->pol.spf_pass == CONF_SPF_PASS_KEY_BY_DOMAIN &&
			 sp->domain[0] != '\0' &&
			 spf_mechanism_narrow(sp->mechanism);
	ssize_t n = grey_key_net(&kc, &j->client, j->netkey,
				 sizeof(j->netkey));
	ssize_t k;
	if (n < 0) {
		k = -1;
	} else if (by_domain) {
		k = grey_key_triplet_spf(&kc, sp->domain,
						 r->v[POLICY_SENDER],
						 r->len[POLICY_SENDER],
						 r->v[POLICY_RECIPIENT],
						 r->len[POLICY_RECIPIENT],
						 j->key, sizeof(j->key));
	} else {
		k = grey_key_triplet(&kc, &j->client, r->v[POLICY_SENDER],
				     r->len[POLICY_SENDER],
				     r->v[POLICY_RECIPIENT],
				     r->len[POLICY_RECIPIENT], j->key,
				     sizeof(j->key));
	}
	if (n < 0 || k < 0) {
		/* Cannot happen: parts are folded to fit (grey/key.h). Treat
		 * it as a store failure, not as a pass. */
		job_store_error(j, "greylist key could not be built");
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
	if (j->gp.auto_whitelist > 0 && !j->force_greylist) {
		store_rmw(j->e->store, STORE_CLIENTS, j->netkey, j->netkeylen,
			  j->now, grey_client_check_rmw, &j->cop,
			  grey_after_client_check, j);
		return;
	}
	grey_triplet(j);
}

/* ---- SPF -------------------------------------------------------------- */

/* tumgreyspf's log wording for each result (enum spf_result order). */
static const char *const spf_log_words[SPF_NRESULTS] = {
	[SPF_NONE] = "SPF none - no SPF record",
	[SPF_NEUTRAL] = "access neither permitted nor denied",
	[SPF_PASS] = "sender SPF authorized",
	[SPF_FAIL] = "SPF fail - not authorized",
	[SPF_SOFTFAIL] = "domain owner discourages use of this host",
	[SPF_TEMPERROR] = "temporary SPF error",
	[SPF_PERMERROR] = "permanent SPF error",
};

static const char *const spf_action_words[] = {"reject", "defer", "greylist",
					       "prepend", "ignore"};

/* Logs `WORDS: QUEUE_ID="..."; identity=...; client-ip=...; helo=...;
 * envelope-from=...; receiver=...;` plus what we do about it. */
static void spf_log(const struct job *j, enum spf_identity id, int result,
		    const char *action, const char *problem)
{
	char qid[64], helo[LOG_UNTRUSTED_MAX], snd[LOG_UNTRUSTED_MAX],
		rcpt[LOG_UNTRUSTED_MAX], ip[ADDR_STRLEN], prob[200];
	const struct policy_request *r = j->req;
	log_escape(qid, sizeof(qid), r->v[POLICY_QUEUE_ID],
		   r->len[POLICY_QUEUE_ID]);
	log_escape(helo, sizeof(helo), r->v[POLICY_HELO_NAME],
		   r->len[POLICY_HELO_NAME]);
	log_escape(snd, sizeof(snd), r->v[POLICY_SENDER], r->len[POLICY_SENDER]);
	log_escape(rcpt, sizeof(rcpt), r->v[POLICY_RECIPIENT],
		   r->len[POLICY_RECIPIENT]);
	addr_format(&j->client, ip, sizeof(ip));
	if (problem && *problem)
		snprintf(prob, sizeof(prob), " problem=\"%s\";", problem);
	else
		prob[0] = '\0';
	log_info("%s: QUEUE_ID=\"%s\"; identity=%s; client-ip=%s; helo=%s; "
		 "envelope-from=%s; receiver=%s;%s action=%s;",
		 spf_log_words[result], qid, spf_identity_name(id), ip, helo,
		 snd, rcpt, prob, action);
}

/* Is name in the comma-separated list of domains (a listed domain covers
 * its subdomains)? */
static bool domain_in_list(const char *list, const char *name)
{
	char item[ENGINE_DOMAIN_MAX];
	const char *cur = list;
	if (list == NULL || *name == '\0')
		return false;
	while (str_list_next(&cur, item, sizeof(item)) == 1) {
		const char *d = item[0] == '.' ? item + 1 : item;
		if (strcasecmp(d, name) == 0 ||
		    (str_iends_with(name, d) &&
		     name[strlen(name) - strlen(d) - 1] == '.'))
			return true;
	}
	return false;
}

/* The reply for a reject or defer caused by an SPF result. */
static void spf_reply(const struct job *j, bool reject, int result,
		      const char *domain, bool helo, char *out, size_t size)
{
	const struct engine_spf *sp = &j->msg->spf;
	bool classic = j->conf->smtp_codes == CONF_CODES_CLASSIC;
	const char *code;
	char text[SPF_EXPLANATION_MAX + ENGINE_DOMAIN_MAX + 200];
	const char *problem = helo ? sp->helo_problem : sp->problem;

	switch (result) {
	case SPF_FAIL:
		if (!helo && sp->explanation[0] != '\0' &&
		    sp->explanation_from_domain)
			snprintf(text, sizeof(text),
				 "The domain %s explains: %s", domain,
				 sp->explanation);
		else if (!helo && sp->explanation[0] != '\0')
			snprintf(text, sizeof(text), "%s", sp->explanation);
		else
			snprintf(text, sizeof(text),
				 "SPF fail: the HELO name %s does not "
				 "authorize this host",
				 domain);
		code = reject ? (classic ? "550 5.7.1" : "550 5.7.23")
			      : (classic ? "451 4.7.1" : "451 4.7.23");
		break;
	case SPF_PERMERROR:
		snprintf(text, sizeof(text),
			 "SPF permanent error for %s: %s", domain,
			 problem[0] ? problem : "invalid SPF record");
		code = reject ? (classic ? "550 5.5.2" : "550 5.7.24")
			      : (classic ? "451 4.4.3" : "451 4.7.24");
		break;
	case SPF_TEMPERROR:
		snprintf(text, sizeof(text),
			 "SPF temporary error for %s: %s, please try again "
			 "later",
			 domain, problem[0] ? problem : "DNS failure");
		code = reject ? (classic ? "550 5.7.1" : "550 5.7.24")
			      : (classic ? "451 4.4.3" : "451 4.7.24");
		break;
	case SPF_SOFTFAIL:
		snprintf(text, sizeof(text), "SPF softfail for %s: %s", domain,
			 spf_log_words[result]);
		code = reject ? (classic ? "550 5.7.1" : "550 5.7.23")
			      : (classic ? "451 4.7.1" : "451 4.7.23");
		break;
	default:
		/* pass, neutral, none: refused by local policy, not because
		 * SPF validation failed, so not X.7.23. */
		snprintf(text, sizeof(text), "SPF %s for %s: %s",
			 spf_result_name((enum spf_result)result), domain,
			 spf_log_words[result]);
		code = reject ? "550 5.7.1" : "451 4.7.1";
		break;
	}
	/* The reply writer makes it printable; bound the text for Postfix's
	 * 510-octet reply limit. */
	snprintf(out, size, "%s %.400s", code, text);
}

/* Queues the header(s) of one identity's result, once per message. */
static void spf_queue_headers(struct job *j, enum spf_identity id)
{
	struct engine_spf *sp = &j->msg->spf;
	const struct policy_request *r = j->req;
	char h[SPF_HEADER_MAX];
	if (sp->headers_queued || j->pol.spf_header == CONF_HDR_NONE)
		return;
	bool mf = id == SPF_ID_MAILFROM;
	int result = mf ? sp->mailfrom : sp->helo;
	if (result < 0)
		return;
	struct spf_header_info hi = {
		.result = (enum spf_result)result,
		.identity = id,
		.ip = &j->client,
		.sender = r->v[POLICY_SENDER],
		.helo = r->v[POLICY_HELO_NAME],
		.receiver = j->conf->hostname,
		.mechanism = mf ? (sp->mechanism[0] ? sp->mechanism : NULL)
				: (sp->helo_mechanism[0] ? sp->helo_mechanism
							 : NULL),
		.problem = mf ? (sp->problem[0] ? sp->problem : NULL)
			      : (sp->helo_problem[0] ? sp->helo_problem : NULL),
	};
	sp->headers_queued = true;
	if (j->pol.spf_header == CONF_HDR_RECEIVED_SPF ||
	    j->pol.spf_header == CONF_HDR_BOTH) {
		if (spf_header_received(&hi, h, sizeof(h)) > 0)
			msg_queue_header(j->msg, h);
	}
	if (j->pol.spf_header == CONF_HDR_AUTH_RESULTS ||
	    j->pol.spf_header == CONF_HDR_BOTH) {
		if (spf_header_auth_results(j->conf->authserv_id, &hi, h,
					    sizeof(h)) > 0)
			msg_queue_header(j->msg, h);
	}
}

static bool action_wants_header(int act)
{
	return act == CONF_SPF_PREPEND || act == CONF_SPF_GREYLIST;
}

/* Both identities are known: act on them for this recipient. Each
 * identity's result maps to its own action; the more severe of a reject
 * or defer wins (MAIL FROM on a tie); the header records the MAIL FROM
 * result if its action wants one, else the HELO result if its action
 * does: one Received-SPF per message. */
static void spf_decide(struct job *j)
{
	struct engine_spf *sp = &j->msg->spf;

	if (sp->skipped) {
		job_continue(j);
		return;
	}
	int mf_act = sp->mailfrom >= 0 ? j->pol.mailfrom_action[sp->mailfrom]
				       : CONF_SPF_IGNORE;
	int helo_act = sp->helo >= 0 ? j->pol.helo_action[sp->helo]
				     : CONF_SPF_IGNORE;
	bool by_helo = helo_act < mf_act;
	int act = by_helo ? helo_act : mf_act;
	if (!sp->logged) {
		sp->logged = true;
		if (sp->helo >= 0 && !sp->helo_is_mailfrom)
			spf_log(j, SPF_ID_HELO, sp->helo,
				j->pol.test_only ? "none (test_only)"
						 : spf_action_words[helo_act],
				sp->helo_problem);
		if (sp->mailfrom >= 0)
			spf_log(j, SPF_ID_MAILFROM, sp->mailfrom,
				j->pol.test_only ? "none (test_only)"
						 : spf_action_words[mf_act],
				sp->problem);
	}
	if (j->pol.test_only) {
		job_continue(j);
		return;
	}
	if (act == CONF_SPF_REJECT || act == CONF_SPF_DEFER) {
		char action[POLICY_ACTION_MAX + 1];
		int result = by_helo ? sp->helo : sp->mailfrom;
		const char *domain = by_helo ? sp->helo_domain : sp->domain;
		if (act == CONF_SPF_REJECT)
			j->e->counters.spf_rejected++;
		else
			j->e->counters.spf_deferred++;
		spf_reply(j, act == CONF_SPF_REJECT, result, domain, by_helo,
			  action, sizeof(action));
		job_finish(j, action);
		return;
	}
	if (mf_act == CONF_SPF_GREYLIST || helo_act == CONF_SPF_GREYLIST)
		j->force_greylist = true;
	if (action_wants_header(mf_act))
		spf_queue_headers(j, SPF_ID_MAILFROM);
	else if (action_wants_header(helo_act))
		spf_queue_headers(j, SPF_ID_HELO);
	/* What SPF tells greylisting (unless an action forces it). */
	if (sp->mailfrom == SPF_PASS) {
		if (j->pol.only_if == CONF_ONLY_IF_SPF_NOT_PASS ||
		    j->pol.spf_pass == CONF_SPF_PASS_SKIP) {
			j->skip_greylist = true;
			j->skip_why = "SPF pass";
		} else if (domain_in_list(j->pol.whitelist_senders,
					  sp->domain)) {
			j->skip_greylist = true;
			j->skip_why = "SPF pass for a whitelisted sender domain";
		}
	}
	if (!j->skip_greylist && sp->helo == SPF_PASS &&
	    domain_in_list(j->pol.whitelist_helo, sp->helo_domain)) {
		j->skip_greylist = true;
		j->skip_why = "SPF pass for a whitelisted HELO name";
	}
	job_continue(j);
}

struct spf_wait {
	struct job *j;
	enum spf_identity id;
	bool both; /* null sender: one evaluation serves both identities */
};

static void spf_copy(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

static void spf_on_done(void *arg, const struct spf_outcome *o)
{
	struct spf_wait *w = arg;
	struct job *j = w->j;
	struct engine_spf *sp = &j->msg->spf;
	j->e->counters.spf_evaluations++;
	j->e->counters.spf_result[o->result]++;
	if (w->id == SPF_ID_MAILFROM || w->both) {
		sp->mailfrom = (int)o->result;
		spf_copy(sp->domain, sizeof(sp->domain), o->domain);
		spf_copy(sp->explanation, sizeof(sp->explanation),
			 o->explanation);
		sp->explanation_from_domain = o->explanation_from_domain;
		spf_copy(sp->problem, sizeof(sp->problem), o->problem);
		spf_copy(sp->mechanism, sizeof(sp->mechanism), o->mechanism);
	}
	if (w->id == SPF_ID_HELO || w->both) {
		sp->helo = (int)o->result;
		spf_copy(sp->helo_domain, sizeof(sp->helo_domain), o->domain);
		spf_copy(sp->helo_problem, sizeof(sp->helo_problem),
			 o->problem);
		spf_copy(sp->helo_mechanism, sizeof(sp->helo_mechanism),
			 o->mechanism);
		sp->helo_is_mailfrom = w->both;
	}
	free(w);
	if (--j->spf_pending == 0) {
		sp->done = true;
		spf_decide(j);
	}
}

static void spf_start(struct job *j, enum spf_identity id, bool both)
{
	const struct policy_request *r = j->req;
	struct spf_request rq;
	struct spf_wait *w = xcalloc(1, sizeof(*w));
	w->j = j;
	w->id = id;
	w->both = both;
	spf_request_init(&rq, id, &j->client, r->v[POLICY_SENDER],
			 r->v[POLICY_HELO_NAME], j->conf->hostname);
	rq.max_void = (int)j->conf->max_void;
	rq.now = j->now;
	j->spf_pending++;
	spfrun_start(j->e->base, j->e->dns, &rq, (double)j->conf->spf_time_limit,
		     spf_on_done, w);
}

/* Is the HELO name worth an SPF check (a domain, not an address literal)? */
static bool helo_is_domain(const char *h)
{
	struct addr a;
	if (*h == '\0' || *h == '[' || strchr(h, '.') == NULL)
		return false;
	return addr_parse(h, &a) != 0;
}

/* FNV-1a over what an SPF result depends on, to tie the per-message
 * cache to it. */
static uint64_t spf_ident_hash(const struct policy_request *r,
			       bool has_mailfrom)
{
	static const enum policy_attr parts[] = {
		POLICY_CLIENT_ADDRESS, POLICY_HELO_NAME, POLICY_SENDER};
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		const unsigned char *p = (const unsigned char *)r->v[parts[i]];
		for (size_t k = 0; k < r->len[parts[i]]; k++)
			h = (h ^ p[k]) * 0x100000001b3ull;
		h = (h ^ 0xff) * 0x100000001b3ull; /* separator */
	}
	return has_mailfrom ? h : ~h;
}

static void check_spf(struct job *j)
{
	struct engine_spf *sp = &j->msg->spf;
	const struct policy_request *r = j->req;

	j->spf_ran = true;
	/* Before MAIL FROM (CONNECT, HELO/EHLO, VRFY, ETRN) an empty sender
	 * is no null reverse-path: only the HELO identity exists. */
	const char *state = r->v[POLICY_PROTOCOL_STATE];
	bool has_mailfrom = r->len[POLICY_PROTOCOL_STATE] == 0 ||
			    strcmp(state, "MAIL") == 0 ||
			    strcmp(state, "RCPT") == 0 ||
			    strcmp(state, "DATA") == 0 ||
			    strcmp(state, "END-OF-MESSAGE") == 0;
	uint64_t ident = spf_ident_hash(r, has_mailfrom);
	if (sp->done && sp->ident == ident) { /* an earlier recipient's */
		spf_decide(j);
		return;
	}
	/* First request of the message, or (should Postfix ever reuse an
	 * instance) another client, HELO or sender: evaluate afresh. */
	bool queued = sp->headers_queued;
	memset(sp, 0, sizeof(*sp));
	sp->headers_queued = queued;
	sp->ident = ident;
	sp->mailfrom = sp->helo = -1;
	if (cidr_list_match(&j->conf->skip_nets, &j->client)) {
		sp->done = sp->skipped = true;
		j->e->counters.spf_skipped++;
		job_log(j, "SPF skipped", "client in skip_clients");
		job_continue(j);
		return;
	}
	if (j->e->dns == NULL) {
		/* Cannot happen with the daemon's set-up; stay safe. */
		sp->mailfrom = SPF_TEMPERROR;
		spf_copy(sp->problem, sizeof(sp->problem), "no resolver");
		sp->done = true;
		spf_decide(j);
		return;
	}
	bool null_sender = r->len[POLICY_SENDER] == 0;
	bool helo_ok = helo_is_domain(r->v[POLICY_HELO_NAME]);
	if (!has_mailfrom) {
		if (j->pol.helo_check && helo_ok) {
			spf_start(j, SPF_ID_HELO, false);
		} else {
			sp->done = true;
			spf_decide(j);
		}
		return;
	}
	if (null_sender) {
		/* MAIL FROM is postmaster@HELO (RFC 7208 section 2.4): one
		 * evaluation answers both identities. */
		spf_start(j, SPF_ID_MAILFROM, j->pol.helo_check && helo_ok);
		return;
	}
	spf_start(j, SPF_ID_MAILFROM, false);
	if (j->pol.helo_check && helo_ok)
		spf_start(j, SPF_ID_HELO, false);
}

static void job_next_check(struct job *j)
{
	if (j->check >= j->pol.checks.n) {
		/* An SPF action forced greylisting that `checks` lacks. */
		if (j->force_greylist && !j->greylist_ran) {
			check_greylist(j);
			return;
		}
		job_finish_ok(j);
		return;
	}
	switch (j->pol.checks.v[j->check]) {
	case CONF_CHECK_GREYLIST:
		check_greylist(j);
		return;
	case CONF_CHECK_SPF:
		check_spf(j);
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

	if (now - e->dbwl_loaded >= ENGINE_DBWL_REFRESH &&
	    store_healthy(e->store)) {
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
