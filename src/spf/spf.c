/*
 * spf - the check_host() evaluator as a sans-I/O state machine; see spf.h.
 *
 * The evaluation is a stack of frames, one per record being evaluated
 * (the top domain, then one per nested include; redirect replaces the
 * frame's domain and record). Each DNS-querying step sets `op` to what it
 * waits for and queues its lookups in `q`; spf_eval_next() hands them out
 * and, once all are answered, process() consumes them and run() continues
 * until new lookups are needed or the result is known.
 *
 * %{p} needs DNS too: a macro-string that uses it first resolves the
 * validated names of the client (cached for the evaluation), after which
 * the same step is retried. The term counter is charged once per term
 * (term_counted), so a retried step is not counted twice.
 *
 * Errors (temperror, permerror) end the whole evaluation at once, whatever
 * the include depth, as RFC 7208 sections 5.2 and 4.6.4 require.
 */
#include "spf/spf.h"
#include "spf/arena.h"
#include "spf/macro.h"
#include "spf/record.h"
#include "util/xalloc.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

/* Deepest frame stack: the top record plus one per include; every include
 * is a DNS-querying term, so SPF_MAX_DNS_TERMS bounds the nesting. */
#define SPF_MAX_DEPTH (SPF_MAX_DNS_TERMS + 2)
/* Most records of one answer we keep; our choice: a 64 KB DNS message
 * holds a few thousand at most, and no legitimate SPF lookup needs more. */
#define SPF_MAX_ANSWER_RR 1000
/* Bytes of the first arena block, kept inside the evaluation object so a
 * typical warm-cache evaluation makes a single allocation. */
#define SPF_EVAL_INLINE_ARENA 8192
/* Longest trace line; our choice (longer lines are cut). */
#define SPF_TRACE_LINE 512
/* Longest problem text; our choice, fits a Received-SPF field. */
#define SPF_PROBLEM_MAX 200

enum op {
	OP_NONE,
	OP_RECORD,   /* TXT of the frame's domain */
	OP_A,	     /* "a": A or AAAA of the target */
	OP_MX,	     /* "mx": MX of the target */
	OP_MX_ADDR,  /* "mx": A or AAAA of every MX name */
	OP_PTR,	     /* "ptr": PTR of the client */
	OP_PTR_ADDR, /* "ptr": A or AAAA of candidate names */
	OP_EXISTS,   /* "exists": A of the target */
	OP_P_PTR,    /* %{p}: PTR of the client */
	OP_P_ADDR,   /* %{p}: A or AAAA of the PTR names */
	OP_EXP,	     /* exp=: TXT of the explanation domain */
};

enum phase {
	PH_TERMS,	/* evaluating frames */
	PH_EXP,		/* fail: expand exp= and look it up */
	PH_EXP_TEXT,	/* fail: expand the explanation TXT */
	PH_EXP_DEFAULT, /* fail: expand the default explanation */
	PH_DONE,
};

struct query {
	unsigned id;
	enum dns_type type;
	const char *name;
	bool answered;
	enum dns_status status;
	size_t count;
	struct dns_rr *rr;
};

struct frame {
	const char *domain; /* <domain>, no trailing dot */
	struct spf_record rec;
	bool have_rec;
	bool via_redirect;
	size_t term; /* next term; == nterms: modifiers phase */
};

enum p_state { P_UNKNOWN, P_DONE };

struct spf_eval {
	struct spf_arena arena;
	struct spf_outcome out;
	bool started;
	enum phase phase;

	/* The request, copied into the arena. */
	struct addr ip;
	const char *sender, *local, *sender_domain, *helo, *receiver;
	const char *default_exp;
	int max_void;
	long long now;
	spf_trace_fn trace;
	void *trace_arg;

	struct frame frames[SPF_MAX_DEPTH];
	int depth;
	bool term_counted;
	const char *ptr_target; /* "ptr": the expanded target-name */

	enum op op;
	struct query q[SPF_MAX_STEP];
	size_t nq;
	unsigned next_id;

	enum p_state p_state;
	const char *p_names[SPF_MAX_PTR_NAMES];
	size_t p_n;

	const char *exp_text; /* PH_EXP_TEXT: the TXT to expand */
	size_t exp_text_len;

	unsigned char inline_arena[SPF_EVAL_INLINE_ARENA];
};

static const char *const result_names[] = {
    [SPF_NONE] = "none",	   [SPF_NEUTRAL] = "neutral",
    [SPF_PASS] = "pass",	   [SPF_FAIL] = "fail",
    [SPF_SOFTFAIL] = "softfail",   [SPF_TEMPERROR] = "temperror",
    [SPF_PERMERROR] = "permerror",
};

const char *spf_result_name(enum spf_result r)
{
	if ((unsigned)r < sizeof(result_names) / sizeof(result_names[0]))
		return result_names[r];
	return "permerror";
}

int spf_result_parse(const char *s, enum spf_result *out)
{
	for (size_t i = 0; i < sizeof(result_names) / sizeof(result_names[0]);
	     i++) {
		if (strcasecmp(s, result_names[i]) == 0) {
			*out = (enum spf_result)i;
			return 0;
		}
	}
	return -1;
}

const char *spf_identity_name(enum spf_identity id)
{
	return id == SPF_ID_HELO ? "helo" : "mailfrom";
}

void spf_request_init(struct spf_request *rq, enum spf_identity identity,
		      const struct addr *ip, const char *sender,
		      const char *helo, const char *receiver)
{
	memset(rq, 0, sizeof(*rq));
	rq->ip = *ip;
	rq->identity = identity;
	rq->sender = sender != NULL ? sender : "";
	rq->helo = helo != NULL ? helo : "";
	rq->receiver = receiver;
	rq->max_void = SPF_MAX_VOID_LOOKUPS;
	rq->now = (long long)time(NULL);
	const char *at = strrchr(rq->sender, '@');
	if (identity == SPF_ID_HELO || rq->sender[0] == '\0' || at == NULL)
		rq->domain = rq->helo;
	else
		rq->domain = at + 1;
}

/* ---- small helpers ---------------------------------------------------- */

static struct frame *top(struct spf_eval *ev)
{
	return &ev->frames[ev->depth - 1];
}

/* Copies printable ASCII, replacing anything else by '?'. */
static void sanitise(char *s)
{
	for (unsigned char *u = (unsigned char *)s; *u != '\0'; u++)
		if (*u < 0x20 || *u > 0x7e)
			*u = '?';
}

static void tracef(struct spf_eval *ev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void tracef(struct spf_eval *ev, const char *fmt, ...)
{
	char line[SPF_TRACE_LINE];
	va_list ap;

	if (ev->trace == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	sanitise(line);
	ev->trace(ev->trace_arg, ev->depth > 0 ? ev->depth - 1 : 0, line);
}

static void finish(struct spf_eval *ev)
{
	ev->phase = PH_DONE;
	ev->nq = 0;
	ev->op = OP_NONE;
	if (ev->out.result != SPF_FAIL)
		ev->out.explanation = NULL;
	if (ev->out.mechanism != NULL)
		tracef(ev, "result: %s (mechanism %s; %u DNS terms, %u void)",
		       spf_result_name(ev->out.result), ev->out.mechanism,
		       ev->out.lookups, ev->out.void_lookups);
	else
		tracef(ev, "result: %s%s%s", spf_result_name(ev->out.result),
		       ev->out.problem != NULL ? ": " : "",
		       ev->out.problem != NULL ? ev->out.problem : "");
}

/* Ends the evaluation with an error result (or none) and a problem text. */
static void fail_eval(struct spf_eval *ev, enum spf_result r, const char *fmt,
		      ...) __attribute__((format(printf, 3, 4)));

static void fail_eval(struct spf_eval *ev, enum spf_result r, const char *fmt,
		      ...)
{
	char buf[SPF_PROBLEM_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sanitise(buf);
	ev->out.result = r;
	ev->out.mechanism = NULL;
	ev->out.problem = spf_arena_strdup(&ev->arena, buf);
	tracef(ev, "stop: %s", buf);
	if (r == SPF_NONE)
		ev->out.problem = NULL;
	finish(ev);
}

static const char *type_name(enum dns_type t)
{
	switch (t) {
	case DNS_T_A:
		return "A";
	case DNS_T_AAAA:
		return "AAAA";
	case DNS_T_MX:
		return "MX";
	case DNS_T_PTR:
		return "PTR";
	case DNS_T_TXT:
		return "TXT";
	}
	return "?";
}

static const char *status_name(enum dns_status s)
{
	switch (s) {
	case DNS_OK:
		return "ok";
	case DNS_NODATA:
		return "no data";
	case DNS_NXDOMAIN:
		return "NXDOMAIN";
	case DNS_SERVFAIL:
		return "server failure";
	case DNS_TIMEOUT:
		return "timeout";
	}
	return "?";
}

static bool is_dns_error(enum dns_status s)
{
	return s == DNS_SERVFAIL || s == DNS_TIMEOUT;
}

static enum dns_type addr_type(const struct spf_eval *ev)
{
	return ev->ip.family == AF_INET ? DNS_T_A : DNS_T_AAAA;
}

/*
 * A name we may send to the resolver: 1..253 octets, labels of 1..63
 * octets (RFC 1035 section 2.3.4), printable ASCII or space (macros can
 * produce spaces, which DNS allows), and no backslash, which presentation
 * form would read as an escape. Anything else is treated as a name that
 * does not exist (RFC 7208 section 4.3 by analogy; the test suite allows
 * it).
 */
static bool name_ok(const char *n)
{
	size_t len = strlen(n), label = 0;
	if (len == 0 || len > SPF_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)n[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (c < 0x20 || c > 0x7e || c == '\\')
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

/* RFC 7208 section 4.3: the initial <domain> must be a fully qualified
 * name with valid labels; a domain literal or single label is not. */
static bool initial_domain_ok(const char *d)
{
	if (d[0] == '[' || !name_ok(d) || strchr(d, '.') == NULL ||
	    strchr(d, ' ') != NULL)
		return false;
	const char *last = strrchr(d, '.') + 1;
	for (const char *p = last; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return true;
	return false; /* all-numeric top label: an address, not a name */
}

/* Duplicates s without one trailing dot. */
static char *dup_nodot(struct spf_eval *ev, const char *s)
{
	size_t n = strlen(s);
	if (n > 0 && s[n - 1] == '.')
		n--;
	return spf_arena_strndup(&ev->arena, s, n);
}

/* True if name equals domain or is a subdomain of it (case-insensitive,
 * trailing dots ignored). */
static bool name_within(const char *name, const char *domain)
{
	size_t nl = strlen(name), dl = strlen(domain);
	if (nl > 0 && name[nl - 1] == '.')
		nl--;
	if (dl > 0 && domain[dl - 1] == '.')
		dl--;
	if (dl == 0 || nl < dl)
		return false;
	if (strncasecmp(name + nl - dl, domain, dl) != 0)
		return false;
	return nl == dl || name[nl - dl - 1] == '.';
}

static void reverse_name(const struct addr *ip, char *buf, size_t size)
{
	if (ip->family == AF_INET) {
		snprintf(buf, size, "%u.%u.%u.%u.in-addr.arpa", ip->b[3],
			 ip->b[2], ip->b[1], ip->b[0]);
		return;
	}
	static const char hex[] = "0123456789abcdef";
	size_t j = 0;
	for (int i = 15; i >= 0 && j + 4 < size; i--) {
		buf[j++] = hex[ip->b[i] & 15];
		buf[j++] = '.';
		buf[j++] = hex[ip->b[i] >> 4];
		buf[j++] = '.';
	}
	snprintf(buf + j, size - j, "ip6.arpa");
}

static void add_query(struct spf_eval *ev, enum dns_type type, const char *name)
{
	if (ev->nq >= SPF_MAX_STEP)
		abort(); /* engine bug: steps never exceed SPF_MAX_STEP */
	struct query *q = &ev->q[ev->nq++];
	memset(q, 0, sizeof(*q));
	q->id = ++ev->next_id;
	q->type = type;
	q->name = name;
	ev->out.queries++;
	tracef(ev, "lookup %s %s", type_name(type), name);
}

static void next_term(struct spf_eval *ev)
{
	top(ev)->term++;
	ev->term_counted = false;
}

/* Counts one void lookup; false (and permerror) past the limit. */
static bool void_lookup(struct spf_eval *ev)
{
	ev->out.void_lookups++;
	tracef(ev, "void lookup %u of %d allowed", ev->out.void_lookups,
	       ev->max_void);
	if ((int)ev->out.void_lookups > ev->max_void) {
		fail_eval(ev, SPF_PERMERROR,
			  "more than %d void lookups (RFC 7208 4.6.4)",
			  ev->max_void);
		return false;
	}
	return true;
}

/* ---- macros ----------------------------------------------------------- */

/* Section 7.3: the <domain> itself if validated, else a validated
 * subdomain of it, else any validated name, else "unknown". */
static const char *choose_p(const struct spf_eval *ev, const char *domain)
{
	for (size_t i = 0; i < ev->p_n; i++)
		if (strcasecmp(ev->p_names[i], domain) == 0)
			return ev->p_names[i];
	for (size_t i = 0; i < ev->p_n; i++)
		if (name_within(ev->p_names[i], domain))
			return ev->p_names[i];
	return ev->p_n > 0 ? ev->p_names[0] : "unknown";
}

static void start_p(struct spf_eval *ev)
{
	char rev[80];
	reverse_name(&ev->ip, rev, sizeof(rev));
	tracef(ev, "resolving %%{p}: validated name of the client");
	add_query(ev, DNS_T_PTR, spf_arena_strdup(&ev->arena, rev));
	ev->op = OP_P_PTR;
}

/*
 * Expands a macro-string with %{d} = domain. Returns 1 with *res set
 * (arena), 0 if %{p} must be resolved first (its lookups are queued), or
 * -1 if the expansion is too long.
 */
static int expand(struct spf_eval *ev, const char *s, size_t len,
		  enum spf_macro_mode mode, const char *domain, char **res,
		  size_t *reslen)
{
	char buf[SPF_MACRO_MAX + 1];
	size_t n;

	if (ev->p_state != P_DONE && spf_macro_uses_p(s, len)) {
		start_p(ev);
		return 0;
	}
	struct spf_macro_ctx ctx = {
	    .sender = ev->sender,
	    .local = ev->local,
	    .sender_domain = ev->sender_domain,
	    .domain = domain,
	    .ip = &ev->ip,
	    .helo = ev->helo,
	    .ptr_name = choose_p(ev, domain),
	    .receiver = ev->receiver,
	    .now = ev->now,
	};
	if (spf_macro_expand(s, len, mode, &ctx, buf, sizeof(buf), &n) < 0)
		return -1;
	char *r = buf;
	if (mode == SPF_MACRO_DOMAIN)
		r = spf_macro_domain_finish(buf, &n);
	*res = spf_arena_strndup(&ev->arena, r, n);
	if (reslen != NULL)
		*reslen = n;
	return 1;
}

/* Expands a term's target-name; same returns as expand(). */
static int target_of(struct spf_eval *ev, const struct spf_term *t,
		     char **target)
{
	struct frame *f = top(ev);
	if (t->domain_spec == NULL) {
		*target = (char *)f->domain;
		return 1;
	}
	int r = expand(ev, t->domain_spec, t->domain_spec_len, SPF_MACRO_DOMAIN,
		       f->domain, target, NULL);
	if (r < 0)
		fail_eval(ev, SPF_PERMERROR, "macro expansion too long in '%s'",
			  t->text);
	else if (r > 0 && t->domain_spec != NULL)
		tracef(ev, "target-name %s", *target);
	return r;
}

/* ---- frames and results ----------------------------------------------- */

static void frame_done(struct spf_eval *ev, enum spf_result r,
		       const struct spf_term *t);

static void match(struct spf_eval *ev, const struct spf_term *t)
{
	tracef(ev, "%s: match -> %s", t->text, spf_result_name(t->qualifier));
	frame_done(ev, t->qualifier, t);
}

static void no_match(struct spf_eval *ev, const struct spf_term *t)
{
	tracef(ev, "%s: no match", t->text);
	next_term(ev);
}

static const struct spf_term *current_term(struct spf_eval *ev)
{
	struct frame *f = top(ev);
	return &f->rec.terms[f->term];
}

static void frame_done(struct spf_eval *ev, enum spf_result r,
		       const struct spf_term *t)
{
	if (ev->depth == 1) {
		ev->out.result = r;
		ev->out.mechanism = t != NULL ? t->text : "default";
		if (r == SPF_FAIL) {
			ev->phase = PH_EXP;
			return;
		}
		finish(ev);
		return;
	}
	tracef(ev, "included record result: %s", spf_result_name(r));
	ev->depth--;
	const struct spf_term *inc = current_term(ev);
	if (r == SPF_PASS)
		match(ev, inc);
	else
		no_match(ev, inc);
}

static void push_frame(struct spf_eval *ev, const char *domain)
{
	if (ev->depth >= SPF_MAX_DEPTH) {
		fail_eval(ev, SPF_PERMERROR, "includes nested too deeply");
		return;
	}
	struct frame *f = &ev->frames[ev->depth++];
	memset(f, 0, sizeof(*f));
	f->domain = domain;
	ev->term_counted = false;
}

/* Charges one DNS-querying term (section 4.6.4); false on permerror. */
static bool count_term(struct spf_eval *ev, const char *text)
{
	if (ev->term_counted)
		return true;
	ev->term_counted = true;
	ev->out.lookups++;
	if (ev->out.lookups > SPF_MAX_DNS_TERMS) {
		fail_eval(ev, SPF_PERMERROR,
			  "more than %d DNS-querying terms at '%s' (RFC 7208 "
			  "4.6.4)",
			  SPF_MAX_DNS_TERMS, text);
		return false;
	}
	tracef(ev, "%s: DNS term %u of %d", text, ev->out.lookups,
	       SPF_MAX_DNS_TERMS);
	return true;
}

static void eval_term(struct spf_eval *ev, const struct spf_term *t)
{
	char *target;
	char rev[80];

	switch (t->type) {
	case SPF_MECH_ALL:
		match(ev, t);
		return;
	case SPF_MECH_IP4:
	case SPF_MECH_IP6:
		if (cidr_match(&t->net, &ev->ip))
			match(ev, t);
		else
			no_match(ev, t);
		return;
	default:
		break;
	}
	if (!count_term(ev, t->text))
		return;
	if (target_of(ev, t, &target) <= 0)
		return;
	switch (t->type) {
	case SPF_MECH_INCLUDE:
		if (!name_ok(target) || strchr(target, '.') == NULL) {
			fail_eval(ev, SPF_PERMERROR,
				  "include of an invalid domain '%s'", target);
			return;
		}
		tracef(ev, "include %s", target);
		push_frame(ev, target);
		return;
	case SPF_MECH_PTR:
		ev->ptr_target = target;
		reverse_name(&ev->ip, rev, sizeof(rev));
		add_query(ev, DNS_T_PTR, spf_arena_strdup(&ev->arena, rev));
		ev->op = OP_PTR;
		return;
	default:
		break;
	}
	if (!name_ok(target)) {
		tracef(ev, "%s: invalid name '%s', treated as not existing",
		       t->text, target);
		no_match(ev, t);
		return;
	}
	switch (t->type) {
	case SPF_MECH_A:
		add_query(ev, addr_type(ev), target);
		ev->op = OP_A;
		return;
	case SPF_MECH_MX:
		add_query(ev, DNS_T_MX, target);
		ev->op = OP_MX;
		return;
	case SPF_MECH_EXISTS:
		/* Section 5.7: always an A lookup, even for IPv6 clients. */
		add_query(ev, DNS_T_A, target);
		ev->op = OP_EXISTS;
		return;
	default:
		return;
	}
}

static void follow_redirect(struct spf_eval *ev)
{
	struct frame *f = top(ev);
	char *target;
	char text[SPF_TRACE_LINE];

	snprintf(text, sizeof(text), "redirect=%.*s", (int)f->rec.redirect_len,
		 f->rec.redirect);
	if (!count_term(ev, text))
		return;
	int r = expand(ev, f->rec.redirect, f->rec.redirect_len,
		       SPF_MACRO_DOMAIN, f->domain, &target, NULL);
	if (r == 0)
		return;
	if (r < 0) {
		fail_eval(ev, SPF_PERMERROR, "macro expansion too long in '%s'",
			  text);
		return;
	}
	if (!name_ok(target) || strchr(target, '.') == NULL) {
		/* Section 6.1: a malformed target-name is a permerror. */
		fail_eval(ev, SPF_PERMERROR,
			  "redirect to an invalid domain '%s'", target);
		return;
	}
	tracef(ev, "redirect to %s", target);
	memset(f, 0, sizeof(*f));
	f->domain = target;
	f->via_redirect = true;
	ev->term_counted = false;
}

static void step_terms(struct spf_eval *ev)
{
	struct frame *f = top(ev);
	if (!f->have_rec) {
		add_query(ev, DNS_T_TXT, f->domain);
		ev->op = OP_RECORD;
		return;
	}
	if (f->term < f->rec.nterms) {
		eval_term(ev, &f->rec.terms[f->term]);
		return;
	}
	if (f->rec.redirect != NULL) {
		follow_redirect(ev);
		return;
	}
	tracef(ev, "no mechanism matched: default result neutral");
	frame_done(ev, SPF_NEUTRAL, NULL);
}

/* ---- explanation ------------------------------------------------------ */

static void set_explanation(struct spf_eval *ev, char *text, bool from_domain)
{
	sanitise(text);
	if (strlen(text) > SPF_EXPLANATION_MAX)
		text[SPF_EXPLANATION_MAX] = '\0';
	ev->out.explanation = text;
	ev->out.explanation_from_domain = from_domain;
	tracef(ev, "explanation%s: %s", from_domain ? "" : " (default)", text);
	finish(ev);
}

static void step_exp(struct spf_eval *ev)
{
	struct frame *f = top(ev);
	char *s;
	int r;

	switch (ev->phase) {
	case PH_EXP:
		if (f->rec.exp == NULL) {
			ev->phase = PH_EXP_DEFAULT;
			return;
		}
		r = expand(ev, f->rec.exp, f->rec.exp_len, SPF_MACRO_DOMAIN,
			   f->domain, &s, NULL);
		if (r == 0)
			return;
		if (r < 0 || !name_ok(s)) {
			/* Section 6.2: problems with exp= are ignored. */
			ev->phase = PH_EXP_DEFAULT;
			return;
		}
		add_query(ev, DNS_T_TXT, s);
		ev->op = OP_EXP;
		return;
	case PH_EXP_TEXT:
		r = expand(ev, ev->exp_text, ev->exp_text_len,
			   SPF_MACRO_EXPLAIN, f->domain, &s, NULL);
		if (r == 0)
			return;
		if (r < 0) {
			ev->phase = PH_EXP_DEFAULT;
			return;
		}
		set_explanation(ev, s, true);
		return;
	case PH_EXP_DEFAULT:
		r = expand(ev, ev->default_exp, strlen(ev->default_exp),
			   SPF_MACRO_EXPLAIN, f->domain, &s, NULL);
		if (r == 0)
			return;
		if (r < 0)
			s = spf_arena_strdup(&ev->arena, ev->default_exp);
		set_explanation(ev, s, false);
		return;
	default:
		return;
	}
}

static void run(struct spf_eval *ev)
{
	while (ev->phase != PH_DONE && ev->nq == 0) {
		if (ev->phase == PH_TERMS)
			step_terms(ev);
		else
			step_exp(ev);
	}
}

/* ---- answers ---------------------------------------------------------- */

static bool rr_addr_match(const struct query *q, const struct addr *ip,
			  int prefix)
{
	for (size_t i = 0; i < q->count; i++)
		if (addr_match_prefix(&q->rr[i].addr, ip, prefix))
			return true;
	return false;
}

static void on_record(struct spf_eval *ev, const struct query *q)
{
	struct frame *f = top(ev);
	char err[SPF_PROBLEM_MAX];

	if (is_dns_error(q->status)) {
		fail_eval(ev, SPF_TEMPERROR, "DNS %s looking up TXT %s",
			  status_name(q->status), f->domain);
		return;
	}
	const struct dns_rr *spf = NULL;
	size_t nspf = 0;
	for (size_t i = 0; q->status == DNS_OK && i < q->count; i++) {
		if (spf_record_is_spf(q->rr[i].text, q->rr[i].text_len)) {
			spf = &q->rr[i];
			nspf++;
		}
	}
	if (nspf > 1) {
		fail_eval(ev, SPF_PERMERROR, "%zu SPF records at %s", nspf,
			  f->domain);
		return;
	}
	if (nspf == 0) {
		if (ev->depth == 1 && !f->via_redirect) {
			tracef(ev, "no SPF record at %s", f->domain);
			fail_eval(ev, SPF_NONE, "no SPF record");
		} else {
			/* Sections 5.2 and 6.1: none inside include or
			 * redirect is a permerror. */
			fail_eval(ev, SPF_PERMERROR, "no SPF record at %s (%s)",
				  f->domain,
				  f->via_redirect ? "redirect" : "include");
		}
		return;
	}
	tracef(ev, "record %s: %.*s", f->domain, (int)spf->text_len, spf->text);
	if (spf_record_parse(spf->text, spf->text_len, &ev->arena, &f->rec, err,
			     sizeof(err)) < 0) {
		fail_eval(ev, SPF_PERMERROR, "syntax error in record of %s: %s",
			  f->domain, err);
		return;
	}
	f->have_rec = true;
	f->term = 0;
	ev->term_counted = false;
}

static void on_mx(struct spf_eval *ev, const struct query *q)
{
	const struct spf_term *t = current_term(ev);
	const char *names[SPF_MAX_MX_NAMES];
	size_t n = 0;

	if (is_dns_error(q->status)) {
		fail_eval(ev, SPF_TEMPERROR, "DNS %s looking up MX %s",
			  status_name(q->status), q->name);
		return;
	}
	if (q->status != DNS_OK) {
		if (void_lookup(ev))
			no_match(ev, t);
		return;
	}
	for (size_t i = 0; i < q->count; i++) {
		const char *name = q->rr[i].name;
		if (name[0] == '\0' || strcmp(name, ".") == 0)
			continue; /* null MX (RFC 7505): no host to check */
		if (n == SPF_MAX_MX_NAMES) {
			fail_eval(ev, SPF_PERMERROR,
				  "more than %d MX names for %s (RFC 7208 "
				  "4.6.4)",
				  SPF_MAX_MX_NAMES, q->name);
			return;
		}
		names[n++] = name;
	}
	for (size_t i = 0; i < n; i++) {
		char *name = dup_nodot(ev, names[i]);
		if (name_ok(name))
			add_query(ev, addr_type(ev), name);
	}
	if (ev->nq == 0)
		no_match(ev, t);
	else
		ev->op = OP_MX_ADDR;
}

static void on_ptr(struct spf_eval *ev, const struct query *q)
{
	const struct spf_term *t = current_term(ev);

	if (is_dns_error(q->status)) {
		/* Section 5.5: a PTR lookup error means no match. */
		tracef(ev, "PTR lookup failed (%s): no match",
		       status_name(q->status));
		no_match(ev, t);
		return;
	}
	if (q->status != DNS_OK) {
		if (void_lookup(ev))
			no_match(ev, t);
		return;
	}
	/* Only names that could match the target need validating; the
	 * first SPF_MAX_PTR_NAMES are considered, the rest ignored. */
	for (size_t i = 0; i < q->count && i < SPF_MAX_PTR_NAMES; i++) {
		char *name = dup_nodot(ev, q->rr[i].name);
		if (name_ok(name) && name_within(name, ev->ptr_target))
			add_query(ev, addr_type(ev), name);
	}
	if (ev->nq == 0)
		no_match(ev, t);
	else
		ev->op = OP_PTR_ADDR;
}

static void on_p_ptr(struct spf_eval *ev, const struct query *q)
{
	if (q->status == DNS_OK) {
		for (size_t i = 0; i < q->count && i < SPF_MAX_PTR_NAMES; i++) {
			char *name = dup_nodot(ev, q->rr[i].name);
			if (name_ok(name))
				add_query(ev, addr_type(ev), name);
		}
	}
	if (ev->nq > 0) {
		ev->op = OP_P_ADDR;
		return;
	}
	ev->p_state = P_DONE;
	tracef(ev, "%%{p} = unknown");
}

static void on_p_addr(struct spf_eval *ev, const struct query *q, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (q[i].status == DNS_OK &&
		    rr_addr_match(&q[i], &ev->ip, addr_bits(&ev->ip)))
			ev->p_names[ev->p_n++] = q[i].name;
	ev->p_state = P_DONE;
	tracef(ev, "%%{p}: %zu validated name(s)", ev->p_n);
}

static void on_exp(struct spf_eval *ev, const struct query *q)
{
	const struct dns_rr *rr = q->count == 1 ? &q->rr[0] : NULL;
	bool ok = q->status == DNS_OK && rr != NULL;

	/* Section 6.2: exactly one TXT record, of 7-bit text, with valid
	 * macro syntax; otherwise proceed as if there were no exp=. */
	for (size_t i = 0; ok && i < rr->text_len; i++) {
		unsigned char c = (unsigned char)rr->text[i];
		if (c < 0x20 || c > 0x7e)
			ok = false;
	}
	if (ok && spf_macro_check(rr->text, rr->text_len, SPF_MACRO_EXPLAIN,
				  NULL, NULL) < 0)
		ok = false;
	if (!ok) {
		tracef(ev,
		       "exp= unusable (%s, %zu records): default "
		       "explanation",
		       status_name(q->status), q->count);
		ev->phase = PH_EXP_DEFAULT;
		return;
	}
	ev->exp_text = rr->text;
	ev->exp_text_len = rr->text_len;
	ev->phase = PH_EXP_TEXT;
}

/* Consumes the answers of the finished step. */
static void process(struct spf_eval *ev)
{
	struct query old[SPF_MAX_STEP];
	size_t n = ev->nq;
	enum op op = ev->op;
	const struct spf_term *t;

	memcpy(old, ev->q, n * sizeof(old[0]));
	ev->nq = 0;
	ev->op = OP_NONE;
	switch (op) {
	case OP_NONE:
		return;
	case OP_RECORD:
		on_record(ev, &old[0]);
		return;
	case OP_A:
	case OP_EXISTS:
		t = current_term(ev);
		if (is_dns_error(old[0].status)) {
			fail_eval(ev, SPF_TEMPERROR, "DNS %s looking up %s %s",
				  status_name(old[0].status),
				  type_name(old[0].type), old[0].name);
			return;
		}
		if (old[0].status != DNS_OK) {
			if (void_lookup(ev))
				no_match(ev, t);
			return;
		}
		if (op == OP_EXISTS ||
		    rr_addr_match(&old[0], &ev->ip,
				  ev->ip.family == AF_INET ? t->cidr4
							   : t->cidr6))
			match(ev, t);
		else
			no_match(ev, t);
		return;
	case OP_MX:
		on_mx(ev, &old[0]);
		return;
	case OP_MX_ADDR:
		t = current_term(ev);
		/* In MX order, as a sequential evaluation would see them. */
		for (size_t i = 0; i < n; i++) {
			if (is_dns_error(old[i].status)) {
				fail_eval(ev, SPF_TEMPERROR,
					  "DNS %s looking up %s %s",
					  status_name(old[i].status),
					  type_name(old[i].type), old[i].name);
				return;
			}
			if (old[i].status == DNS_OK &&
			    rr_addr_match(&old[i], &ev->ip,
					  ev->ip.family == AF_INET
					      ? t->cidr4
					      : t->cidr6)) {
				match(ev, t);
				return;
			}
		}
		no_match(ev, t);
		return;
	case OP_PTR:
		on_ptr(ev, &old[0]);
		return;
	case OP_PTR_ADDR:
		t = current_term(ev);
		/* Section 5.5: lookup errors just skip that name. */
		for (size_t i = 0; i < n; i++) {
			if (old[i].status == DNS_OK &&
			    rr_addr_match(&old[i], &ev->ip,
					  addr_bits(&ev->ip))) {
				tracef(ev, "validated %s", old[i].name);
				match(ev, t);
				return;
			}
		}
		no_match(ev, t);
		return;
	case OP_P_PTR:
		on_p_ptr(ev, &old[0]);
		return;
	case OP_P_ADDR:
		on_p_addr(ev, old, n);
		return;
	case OP_EXP:
		on_exp(ev, &old[0]);
		return;
	}
}

/* ---- public API ------------------------------------------------------- */

struct spf_eval *spf_eval_new(const struct spf_request *rq)
{
	struct spf_eval *ev = xmalloc(sizeof(*ev));
	memset(ev, 0, offsetof(struct spf_eval, inline_arena));
	spf_arena_init(&ev->arena, ev->inline_arena, sizeof(ev->inline_arena));
	struct spf_arena *a = &ev->arena;

	ev->ip = rq->ip;
	ev->helo = spf_arena_strdup(a, rq->helo != NULL ? rq->helo : "");
	ev->receiver = spf_arena_strdup(a, rq->receiver != NULL ? rq->receiver
								: "unknown");
	ev->default_exp = spf_arena_strdup(a, rq->default_explanation != NULL
						  ? rq->default_explanation
						  : SPF_DEFAULT_EXPLANATION);
	ev->max_void = rq->max_void > 0 ? rq->max_void : SPF_MAX_VOID_LOOKUPS;
	ev->now = rq->now;
	ev->trace = rq->trace;
	ev->trace_arg = rq->trace_arg;

	/* Section 4.3: no local part means "postmaster"; an empty sender
	 * (or the HELO identity) is postmaster@<helo> (section 2.4). */
	const char *sender = rq->sender != NULL ? rq->sender : "";
	const char *domain = rq->domain != NULL ? rq->domain : "";
	const char *at = strrchr(sender, '@');
	if (rq->identity == SPF_ID_HELO || sender[0] == '\0') {
		ev->local = "postmaster";
		ev->sender_domain = ev->helo;
	} else if (at == NULL) {
		ev->local = spf_arena_strdup(a, sender);
		ev->sender_domain = spf_arena_strdup(a, domain);
	} else {
		ev->local =
		    at == sender
			? "postmaster"
			: spf_arena_strndup(a, sender, (size_t)(at - sender));
		ev->sender_domain = spf_arena_strdup(a, at + 1);
	}
	size_t sl = strlen(ev->local) + 1 + strlen(ev->sender_domain) + 1;
	char *s = spf_arena_alloc(a, sl);
	snprintf(s, sl, "%s@%s", ev->local, ev->sender_domain);
	ev->sender = s;
	ev->out.domain = dup_nodot(ev, domain);
	ev->out.result = SPF_NONE;
	ev->phase = PH_TERMS;
	return ev;
}

void spf_eval_free(struct spf_eval *ev)
{
	if (ev == NULL)
		return;
	spf_arena_free(&ev->arena);
	free(ev);
}

static void start(struct spf_eval *ev)
{
	char ip[ADDR_STRLEN];
	addr_format(&ev->ip, ip, sizeof(ip));
	tracef(ev, "check_host(%s, %s, %s)", ip, ev->out.domain, ev->sender);
	if (!initial_domain_ok(ev->out.domain)) {
		/* Section 4.3: a malformed domain gives none, no query. */
		fail_eval(ev, SPF_NONE, "malformed domain '%s'",
			  ev->out.domain);
		return;
	}
	push_frame(ev, ev->out.domain);
}

size_t spf_eval_next(struct spf_eval *ev, struct spf_lookup *out, size_t max)
{
	if (!ev->started) {
		ev->started = true;
		start(ev);
		run(ev);
	}
	for (;;) {
		if (ev->phase == PH_DONE)
			return 0;
		size_t k = 0;
		for (size_t i = 0; i < ev->nq && k < max; i++) {
			if (ev->q[i].answered)
				continue;
			out[k].id = ev->q[i].id;
			out[k].type = ev->q[i].type;
			out[k].name = ev->q[i].name;
			k++;
		}
		if (k > 0 || max == 0)
			return k;
		process(ev);
		run(ev);
	}
}

int spf_eval_answer(struct spf_eval *ev, unsigned id,
		    const struct dns_answer *ans)
{
	struct query *q = NULL;
	for (size_t i = 0; i < ev->nq; i++)
		if (ev->q[i].id == id && !ev->q[i].answered)
			q = &ev->q[i];
	if (q == NULL || ev->phase == PH_DONE)
		return -1;
	q->answered = true;
	q->status = ans->status;
	q->count = 0;
	if (ans->status == DNS_OK) {
		size_t n = ans->count < SPF_MAX_ANSWER_RR ? ans->count
							  : SPF_MAX_ANSWER_RR;
		q->rr =
		    spf_arena_alloc(&ev->arena, (n ? n : 1) * sizeof(*q->rr));
		for (size_t i = 0; i < n; i++) {
			const struct dns_rr *s = &ans->rr[i];
			struct dns_rr *d = &q->rr[q->count];
			memset(d, 0, sizeof(*d));
			switch (q->type) {
			case DNS_T_A:
			case DNS_T_AAAA:
				if (s->addr.family !=
				    (q->type == DNS_T_A ? AF_INET : AF_INET6))
					continue;
				d->addr = s->addr;
				break;
			case DNS_T_MX:
			case DNS_T_PTR:
				if (s->name == NULL)
					continue;
				d->pref = s->pref;
				d->name = spf_arena_strdup(&ev->arena, s->name);
				break;
			case DNS_T_TXT:
				if (s->text == NULL)
					continue;
				d->text = spf_arena_strndup(&ev->arena, s->text,
							    s->text_len);
				d->text_len = s->text_len;
				break;
			}
			q->count++;
		}
		if (q->count == 0)
			q->status = DNS_NODATA;
	}
	tracef(ev, "answer %s %s: %s, %zu record(s)%s%s", type_name(q->type),
	       q->name, status_name(q->status), q->count,
	       ans->why != NULL ? ": " : "", ans->why != NULL ? ans->why : "");
	return 0;
}

void spf_eval_timeout(struct spf_eval *ev)
{
	if (ev->phase == PH_DONE)
		return;
	ev->started = true;
	fail_eval(ev, SPF_TEMPERROR, "time limit exceeded");
}

bool spf_eval_done(const struct spf_eval *ev)
{
	return ev->phase == PH_DONE;
}

const struct spf_outcome *spf_eval_outcome(const struct spf_eval *ev)
{
	return &ev->out;
}
