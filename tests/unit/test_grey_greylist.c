/*
 * test_grey_greylist - greylisting timing rules, auto-whitelist counting,
 * defer reply and X-Greylist header (grey/greylist).
 *
 * A one-record fake store applies the rmw functions the way store.h says
 * a backend does (old = NULL when absent or expired). Each step runs the
 * function twice on the same input and checks both runs agree: the Redis
 * backend may retry it. Time is a plain variable; nothing sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "grey/greylist.h"

/* 2026-11-26 06:00:00 UTC, a Thursday. */
#define T0 1795672800LL

struct fake {
	bool present;
	struct store_rec rec;
	int writes;
};

/* How to scramble an op's outputs and compare two ops' outputs (field
 * by field: padding is never written). */
struct op_kind {
	void (*scramble)(void *op);
	bool (*same)(const void *a, const void *b);
};

static enum store_verdict apply(struct fake *f, int64_t now, store_rmw_fn fn,
				void *op, size_t opsize,
				const struct op_kind *k)
{
	const struct store_rec *old =
	    f->present && f->rec.expires >= now ? &f->rec : NULL;
	struct store_rec n1, n2;
	_Alignas(max_align_t) unsigned char o1[256];
	assert_true(opsize <= sizeof(o1));
	enum store_verdict v1 = fn(op, old, &n1);
	memcpy(o1, op, opsize);
	/* the second run must write every output again */
	k->scramble(op);
	enum store_verdict v2 = fn(op, old, &n2);
	assert_int_equal(v1, v2);
	assert_true(k->same(o1, op));
	if (v1 == STORE_WRITE) {
		assert_true(n1.first_seen == n2.first_seen &&
			    n1.last_seen == n2.last_seen &&
			    n1.expires == n2.expires && n1.count == n2.count &&
			    n1.passed == n2.passed);
		f->rec = n1;
		f->present = true;
		f->writes++;
	} else if (v1 == STORE_DELETE) {
		f->present = false;
	}
	return v1;
}

static void triplet_scramble(void *p)
{
	struct grey_triplet_op *op = p;
	op->verdict = (enum grey_verdict)77;
	op->would_defer = !op->would_defer;
	op->first_pass = !op->first_pass;
	op->wait_left = op->delayed = -77;
	op->count = 77;
}

static bool triplet_same(const void *pa, const void *pb)
{
	const struct grey_triplet_op *a = pa, *b = pb;
	return a->verdict == b->verdict && a->would_defer == b->would_defer &&
	       a->first_pass == b->first_pass && a->wait_left == b->wait_left &&
	       a->delayed == b->delayed && a->count == b->count;
}

static const struct op_kind triplet_kind = {triplet_scramble, triplet_same};

static void client_scramble(void *p)
{
	struct grey_client_op *op = p;
	op->whitelisted = !op->whitelisted;
	op->counted = !op->counted;
	op->passes = 77;
}

static bool client_same(const void *pa, const void *pb)
{
	const struct grey_client_op *a = pa, *b = pb;
	return a->whitelisted == b->whitelisted && a->counted == b->counted &&
	       a->passes == b->passes;
}

static const struct op_kind client_kind = {client_scramble, client_same};

static struct grey_triplet_op triplet(struct fake *f,
				      const struct grey_params *p, int64_t now)
{
	struct grey_triplet_op op;
	memset(&op, 0, sizeof(op));
	op.params = p;
	op.now = now;
	assert_int_equal(
	    apply(f, now, grey_triplet_rmw, &op, sizeof(op), &triplet_kind),
	    STORE_WRITE);
	return op;
}

static void test_defaults(void **state)
{
	(void)state;
	struct grey_params p;
	grey_params_init(&p);
	assert_int_equal(p.delay, 300);
	assert_int_equal(p.retry_window, 172800);
	assert_int_equal(p.max_age, 35 * 86400);
	assert_int_equal(p.auto_whitelist, 5);
	assert_int_equal(p.awl_interval, 3600);
	assert_false(p.learning);
	assert_string_equal(grey_verdict_name(GREY_INITIAL), "initial");
	assert_string_equal(grey_verdict_name(GREY_PENDING), "pending");
	assert_string_equal(grey_verdict_name(GREY_ALLOWED), "allowed");
	assert_string_equal(grey_verdict_name(GREY_TRAINING), "training");
	assert_true(grey_verdict_defers(GREY_INITIAL));
	assert_true(grey_verdict_defers(GREY_PENDING));
	assert_false(grey_verdict_defers(GREY_ALLOWED));
	assert_false(grey_verdict_defers(GREY_TRAINING));
}

static void test_params_check(void **state)
{
	(void)state;
	struct grey_params p;
	const char *why = NULL;
	grey_params_init(&p);
	assert_int_equal(grey_params_check(&p, &why), 0);
	p.delay = -1;
	assert_int_equal(grey_params_check(&p, &why), -1);
	assert_string_equal(why, "times must not be negative");
	grey_params_init(&p);
	p.retry_window = 299;
	assert_int_equal(grey_params_check(&p, &why), -1);
	assert_string_equal(why,
			    "retry_window is shorter than delay: nothing would "
			    "pass");
	p.retry_window = 300;
	assert_int_equal(grey_params_check(&p, &why), 0);
	p.max_age = 299;
	assert_int_equal(grey_params_check(&p, &why), -1);
	assert_string_equal(why, "max_age is shorter than retry_window");
	grey_params_init(&p);
	p.delay = 0;
	p.auto_whitelist = 0;
	assert_int_equal(grey_params_check(&p, &why), 0);
}

/* One scenario step: at T0 + t, expect verdict, wait_left and record. */
struct step {
	int64_t t;
	enum grey_verdict verdict;
	int64_t wait_left;
	bool first_pass;
	int64_t delayed;
	int64_t first_seen; /* relative to T0 */
	int64_t expires;    /* relative to T0 */
	uint32_t count, passed;
};

static void run_steps(const struct grey_params *p, const struct step *s,
		      size_t n)
{
	struct fake f = {0};
	for (size_t i = 0; i < n; i++) {
		struct grey_triplet_op op = triplet(&f, p, T0 + s[i].t);
		if (op.verdict != s[i].verdict ||
		    op.wait_left != s[i].wait_left ||
		    op.first_pass != s[i].first_pass ||
		    op.delayed != s[i].delayed ||
		    f.rec.first_seen != T0 + s[i].first_seen ||
		    f.rec.expires != T0 + s[i].expires ||
		    f.rec.count != s[i].count || f.rec.passed != s[i].passed)
			fail_msg("step %zu (t=%lld): verdict %s wait %lld "
				 "first_pass %d delayed %lld first %lld "
				 "expires %lld count %u passed %u",
				 i, (long long)s[i].t,
				 grey_verdict_name(op.verdict),
				 (long long)op.wait_left, op.first_pass,
				 (long long)op.delayed,
				 (long long)(f.rec.first_seen - T0),
				 (long long)(f.rec.expires - T0), f.rec.count,
				 f.rec.passed);
		assert_int_equal(f.rec.last_seen, T0 + s[i].t);
		assert_int_equal(op.count, f.rec.count);
		assert_int_equal(op.would_defer,
				 grey_verdict_defers(s[i].verdict));
	}
}

#define D2 172800
#define D35 (35 * 86400)

static void test_normal_retry(void **state)
{
	(void)state;
	struct grey_params p;
	grey_params_init(&p);
	const struct step s[] = {
	    /* first sight */
	    {0, GREY_INITIAL, 300, false, 0, 0, D2, 1, 0},
	    /* too early */
	    {60, GREY_PENDING, 240, false, 0, 0, D2, 2, 0},
	    {299, GREY_PENDING, 1, false, 0, 0, D2, 3, 0},
	    /* exactly delay: passes (postgrey's boundary) */
	    {300, GREY_ALLOWED, 0, true, 300, 0, 300 + D35, 4, 1},
	    /* stays allowed, expiry slides */
	    {301, GREY_ALLOWED, 0, false, 0, 0, 301 + D35, 5, 2},
	    {86400 * 30, GREY_ALLOWED, 0, false, 0, 0, 86400 * 30 + D35, 6, 3},
	    /* unseen for exactly max_age: still alive */
	    {86400 * 65, GREY_ALLOWED, 0, false, 0, 0, 86400 * 65 + D35, 7, 4},
	    /* unseen longer than max_age: starts over */
	    {86400 * 100 + 1, GREY_INITIAL, 300, false, 0, 86400 * 100 + 1,
	     86400 * 100 + 1 + D2, 1, 0},
	};
	run_steps(&p, s, sizeof(s) / sizeof(*s));
}

static void test_retry_window(void **state)
{
	(void)state;
	struct grey_params p;
	grey_params_init(&p);
	const struct step late[] = {
	    {0, GREY_INITIAL, 300, false, 0, 0, D2, 1, 0},
	    {100, GREY_PENDING, 200, false, 0, 0, D2, 2, 0},
	    /* first retry after the window: start over */
	    {D2 + 1, GREY_INITIAL, 300, false, 0, D2 + 1, D2 + 1 + D2, 1, 0},
	    {D2 + 301, GREY_ALLOWED, 0, true, 300, D2 + 1, D2 + 301 + D35, 2,
	     1},
	};
	run_steps(&p, late, sizeof(late) / sizeof(*late));
	const struct step edge[] = {
	    {0, GREY_INITIAL, 300, false, 0, 0, D2, 1, 0},
	    /* exactly at the end of the window: passes */
	    {D2, GREY_ALLOWED, 0, true, D2, 0, D2 + D35, 2, 1},
	};
	run_steps(&p, edge, sizeof(edge) / sizeof(*edge));
}

static void test_clock_step_back(void **state)
{
	(void)state;
	struct grey_params p;
	grey_params_init(&p);
	const struct step s[] = {
	    {1000, GREY_INITIAL, 300, false, 0, 1000, 1000 + D2, 1, 0},
	    /* the clock went back: first_seen is in the future, restart */
	    {500, GREY_INITIAL, 300, false, 0, 500, 500 + D2, 1, 0},
	    {800, GREY_ALLOWED, 0, true, 300, 500, 800 + D35, 2, 1},
	};
	run_steps(&p, s, sizeof(s) / sizeof(*s));
}

static void test_custom_params(void **state)
{
	(void)state;
	struct grey_params p;
	grey_params_init(&p);
	p.delay = 60;
	p.retry_window = 3600;
	p.max_age = 86400;
	const struct step s[] = {
	    {0, GREY_INITIAL, 60, false, 0, 0, 3600, 1, 0},
	    {59, GREY_PENDING, 1, false, 0, 0, 3600, 2, 0},
	    {61, GREY_ALLOWED, 0, true, 61, 0, 61 + 86400, 3, 1},
	};
	run_steps(&p, s, sizeof(s) / sizeof(*s));

	/* delay 0: nothing is ever deferred */
	p.delay = 0;
	const struct step z[] = {
	    {0, GREY_ALLOWED, 0, true, 0, 0, 86400, 1, 1},
	    {1, GREY_ALLOWED, 0, false, 0, 0, 86401, 2, 2},
	};
	run_steps(&p, z, sizeof(z) / sizeof(*z));
}

static void test_learning(void **state)
{
	(void)state;
	struct grey_params p;
	grey_params_init(&p);
	p.learning = true;
	struct fake f = {0};
	struct grey_triplet_op op = triplet(&f, &p, T0);
	assert_int_equal(op.verdict, GREY_TRAINING);
	assert_true(op.would_defer);
	assert_int_equal(op.wait_left, 300);
	assert_int_equal(f.rec.passed, 0);
	assert_int_equal(f.rec.expires, T0 + D2);
	op = triplet(&f, &p, T0 + 10);
	assert_int_equal(op.verdict, GREY_TRAINING);
	assert_true(op.would_defer);
	assert_int_equal(op.wait_left, 290);
	op = triplet(&f, &p, T0 + 400);
	assert_int_equal(op.verdict, GREY_TRAINING);
	assert_false(op.would_defer);
	assert_true(op.first_pass);
	assert_int_equal(op.delayed, 400);
	assert_int_equal(f.rec.passed, 1);
	assert_int_equal(f.rec.expires, T0 + 400 + D35);
}

/* old passed to the rmw but already expired (a backend that does not
 * filter): treated as absent. */
static void test_expired_old_given(void **state)
{
	(void)state;
	struct grey_params p;
	grey_params_init(&p);
	struct store_rec old = {T0, T0 + 400, T0 + 400 + D35, 3, 1}, n;
	struct grey_triplet_op op = {.params = &p, .now = T0 + 400 + D35 + 1};
	assert_int_equal(grey_triplet_rmw(&op, &old, &n), STORE_WRITE);
	assert_int_equal(op.verdict, GREY_INITIAL);
	assert_int_equal(n.first_seen, T0 + 400 + D35 + 1);
	assert_int_equal(n.count, 1);
	assert_int_equal(n.passed, 0);
}

static void test_counter_saturates(void **state)
{
	(void)state;
	struct grey_params p;
	grey_params_init(&p);
	struct store_rec old = {T0, T0, T0 + D35, UINT32_MAX, UINT32_MAX}, n;
	struct grey_triplet_op op = {.params = &p, .now = T0 + 1};
	grey_triplet_rmw(&op, &old, &n);
	assert_int_equal(op.verdict, GREY_ALLOWED);
	assert_int_equal(n.count, UINT32_MAX);
	assert_int_equal(n.passed, UINT32_MAX);
}

static struct grey_client_op client(struct fake *f, const struct grey_params *p,
				    int64_t now, store_rmw_fn fn,
				    enum store_verdict want)
{
	struct grey_client_op op;
	memset(&op, 0, sizeof(op));
	op.params = p;
	op.now = now;
	assert_int_equal(apply(f, now, fn, &op, sizeof(op), &client_kind),
			 want);
	return op;
}

static void test_auto_whitelist(void **state)
{
	(void)state;
	struct grey_params p;
	grey_params_init(&p);
	struct fake f = {0};

	/* unknown client: not whitelisted, nothing written */
	struct grey_client_op op =
	    client(&f, &p, T0, grey_client_check_rmw, STORE_KEEP);
	assert_false(op.whitelisted);
	assert_int_equal(op.passes, 0);
	assert_false(f.present);

	/* first pass: counted */
	op = client(&f, &p, T0, grey_client_pass_rmw, STORE_WRITE);
	assert_true(op.counted);
	assert_false(op.whitelisted);
	assert_int_equal(op.passes, 1);
	assert_int_equal(f.rec.first_seen, T0);
	assert_int_equal(f.rec.last_seen, T0);
	assert_int_equal(f.rec.expires, T0 + D35);
	assert_int_equal(f.rec.count, 1);

	/* another pass within the hour: reported, not counted */
	op = client(&f, &p, T0 + 3599, grey_client_pass_rmw, STORE_WRITE);
	assert_false(op.counted);
	assert_int_equal(op.passes, 1);
	assert_int_equal(f.rec.count, 2);
	assert_int_equal(f.rec.last_seen, T0);
	assert_int_equal(f.rec.expires, T0 + 3599 + D35);

	/* one per hour counts: passes 2..5 */
	for (int i = 1; i <= 4; i++) {
		op = client(&f, &p, T0 + 3600 * i, grey_client_pass_rmw,
			    STORE_WRITE);
		assert_true(op.counted);
		assert_int_equal(op.passes, 1 + i);
		assert_int_equal(op.whitelisted, i == 4);
		op = client(&f, &p, T0 + 3600 * i, grey_client_check_rmw,
			    i == 4 ? STORE_KEEP : STORE_KEEP);
		assert_int_equal(op.whitelisted, i == 4);
	}
	assert_int_equal(f.rec.passed, 5);
	int64_t last = T0 + 4 * 3600;
	assert_int_equal(f.rec.last_seen, last);

	/* whitelisted: refreshed at most hourly */
	op = client(&f, &p, last + 3599, grey_client_check_rmw, STORE_KEEP);
	assert_true(op.whitelisted);
	op = client(&f, &p, last + 3600, grey_client_check_rmw, STORE_WRITE);
	assert_true(op.whitelisted);
	assert_int_equal(f.rec.last_seen, last + 3600);
	assert_int_equal(f.rec.expires, last + 3600 + D35);
	assert_int_equal(f.rec.passed, 5);

	/* unseen beyond max_age: gone */
	int64_t later = last + 3600 + D35 + 1;
	op = client(&f, &p, later, grey_client_check_rmw, STORE_KEEP);
	assert_false(op.whitelisted);
	assert_int_equal(op.passes, 0);
	op = client(&f, &p, later, grey_client_pass_rmw, STORE_WRITE);
	assert_int_equal(op.passes, 1);
	assert_int_equal(f.rec.first_seen, later);
}

static void test_auto_whitelist_off(void **state)
{
	(void)state;
	struct grey_params p;
	grey_params_init(&p);
	p.auto_whitelist = 0;
	struct fake f = {0};
	struct grey_client_op op =
	    client(&f, &p, T0, grey_client_pass_rmw, STORE_KEEP);
	assert_false(op.counted);
	assert_false(f.present);
	/* even a record with many passes does not whitelist */
	f.present = true;
	f.rec = (struct store_rec){T0, T0, T0 + D35, 50, 50};
	op = client(&f, &p, T0 + 1, grey_client_check_rmw, STORE_KEEP);
	assert_false(op.whitelisted);
}

static void test_awl_interval_zero(void **state)
{
	(void)state;
	struct grey_params p;
	grey_params_init(&p);
	p.awl_interval = 0;
	p.auto_whitelist = 2;
	struct fake f = {0};
	client(&f, &p, T0, grey_client_pass_rmw, STORE_WRITE);
	struct grey_client_op op =
	    client(&f, &p, T0, grey_client_pass_rmw, STORE_WRITE);
	assert_true(op.counted);
	assert_true(op.whitelisted);
	op = client(&f, &p, T0, grey_client_check_rmw, STORE_KEEP);
	assert_true(op.whitelisted);
	/* the third pass is counted but is no longer "reached now" */
	op = client(&f, &p, T0, grey_client_pass_rmw, STORE_WRITE);
	assert_false(op.whitelisted);
	assert_int_equal(op.passes, 3);
}

struct reply_case {
	const char *tmpl;
	int64_t wait;
	const char *rcpt;
	const char *want;
};

static const struct reply_case reply_cases[] = {
    {NULL, 300, "bob@example.org",
     "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in 300 seconds"},
    {"Greylisted for %s seconds at %r, 100%% sure", 42, "bob@Example.org",
     "DEFER_IF_PERMIT 4.7.1 Greylisted for 42 seconds at Example.org, "
     "100% sure"},
    {"%r", 1, "postmaster", "DEFER_IF_PERMIT 4.7.1 postmaster"},
    {"%r", 1, NULL, "DEFER_IF_PERMIT 4.7.1 Greylisted"},
    {"%x%", 1, "a@b", "DEFER_IF_PERMIT 4.7.1 %x%"},
    {"%s%s", -5, "a@b", "DEFER_IF_PERMIT 4.7.1 00"},
    {"", 1, "a@b", "DEFER_IF_PERMIT 4.7.1 Greylisted"},
    {"   ", 1, "a@b", "DEFER_IF_PERMIT 4.7.1 Greylisted"},
    {"try later  ", 1, "a@b", "DEFER_IF_PERMIT 4.7.1 try later"},
    {"a\r\nb\tc\x7f\xc3\xa9", 1, "a@b", "DEFER_IF_PERMIT 4.7.1 a??b?c???"},
    {"at %r", 1, "a@b\r\nX: y", "DEFER_IF_PERMIT 4.7.1 at b??X: y"},
};

static void test_defer_reply(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(*reply_cases);
	     i++) {
		const struct reply_case *c = &reply_cases[i];
		char out[GREY_REPLY_MAX + 1];
		ssize_t n = grey_defer_reply(c->tmpl, c->wait, c->rcpt, out,
					     sizeof(out));
		if (n < 0 || strcmp(out, c->want) != 0)
			fail_msg("case %zu: got [%s] want [%s]", i,
				 n < 0 ? "(-1)" : out, c->want);
		assert_int_equal(n, (ssize_t)strlen(c->want));
	}
}

static void test_defer_reply_bounds(void **state)
{
	(void)state;
	char tmpl[1000], out[1000];
	memset(tmpl, 'x', sizeof(tmpl) - 1);
	tmpl[sizeof(tmpl) - 1] = '\0';
	assert_int_equal(grey_defer_reply(tmpl, 1, "a@b", out, sizeof(out)),
			 GREY_REPLY_MAX);
	assert_int_equal(strlen(out), GREY_REPLY_MAX);
	assert_memory_equal(out, "DEFER_IF_PERMIT 4.7.1 xxx", 25);
	/* a long domain through %r is cut too */
	char rcpt[800] = "a@";
	memset(rcpt + 2, 'd', 700);
	rcpt[702] = '\0';
	assert_int_equal(grey_defer_reply("%r", 1, rcpt, out, sizeof(out)),
			 GREY_REPLY_MAX);
	/* a small buffer cuts at outsize - 1 */
	assert_int_equal(grey_defer_reply(NULL, 1, "a@b", out, 30), 29);
	assert_string_equal(out, "DEFER_IF_PERMIT 4.7.1 Greylis");
	/* too small for the action, the code and one byte of text */
	assert_int_equal(grey_defer_reply(NULL, 1, "a@b", out, 23), -1);
	assert_int_equal(grey_defer_reply(NULL, 1, "a@b", out, 24), 23);
	assert_string_equal(out, "DEFER_IF_PERMIT 4.7.1 G");

	assert_int_equal(grey_defer_template_check("ok %s"), 0);
	assert_int_equal(grey_defer_template_check("bad\n"), -1);
	assert_int_equal(grey_defer_template_check("bad\xc3\xa9"), -1);
}

static void test_header(void **state)
{
	(void)state;
	char out[GREY_HEADER_MAX + 1];
	ssize_t n =
	    grey_header(300, "1.2.3", "mx.example.org", T0, out, sizeof(out));
	const char *want = "X-Greylist: delayed 300 seconds by greyspf-1.2.3 "
			   "at mx.example.org; Thu, 26 Nov 2026 06:00:00 "
			   "+0000";
	assert_string_equal(out, want);
	assert_int_equal(n, (ssize_t)strlen(want));

	/* epoch, odd fields, sanitised host, default version */
	n = grey_header(-1, NULL, "bad host;\r\n", 0, out, sizeof(out));
	char want2[200];
	snprintf(want2, sizeof(want2),
		 "X-Greylist: delayed 0 seconds by greyspf-%s at "
		 "bad?host???; Thu, 01 Jan 1970 00:00:00 +0000",
		 GREYSPF_VERSION);
	assert_string_equal(out, want2);
	assert_int_equal(n, (ssize_t)strlen(want2));

	/* leap day and a Sunday */
	grey_header(5, "v", "h", 951782400 + 86399, out, sizeof(out));
	assert_string_equal(out, "X-Greylist: delayed 5 seconds by greyspf-v "
				 "at h; Tue, 29 Feb 2000 23:59:59 +0000");
	grey_header(5, "v", "", 1795910400, out, sizeof(out));
	assert_string_equal(out, "X-Greylist: delayed 5 seconds by greyspf-v "
				 "at localhost; Sun, 29 Nov 2026 00:00:00 "
				 "+0000");

	/* does not fit */
	assert_int_equal(grey_header(300, "1", "h", T0, out, 40), -1);
	/* a huge host name is cut, the header stays bounded */
	char host[2000];
	memset(host, 'h', sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	n = grey_header(300, host, host, T0, out, sizeof(out));
	assert_true(n > 0 && n <= GREY_HEADER_MAX);
	/* the version is cut at 32 bytes, the host at 253 */
	char want3[GREY_HEADER_MAX];
	snprintf(want3, sizeof(want3),
		 "X-Greylist: delayed 300 seconds by greyspf-%.32s at %.253s; "
		 "Thu, 26 Nov 2026 06:00:00 +0000",
		 host, host);
	assert_string_equal(out, want3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_params_check),
	    cmocka_unit_test(test_normal_retry),
	    cmocka_unit_test(test_retry_window),
	    cmocka_unit_test(test_clock_step_back),
	    cmocka_unit_test(test_custom_params),
	    cmocka_unit_test(test_learning),
	    cmocka_unit_test(test_expired_old_given),
	    cmocka_unit_test(test_counter_saturates),
	    cmocka_unit_test(test_auto_whitelist),
	    cmocka_unit_test(test_auto_whitelist_off),
	    cmocka_unit_test(test_awl_interval_zero),
	    cmocka_unit_test(test_defer_reply),
	    cmocka_unit_test(test_defer_reply_bounds),
	    cmocka_unit_test(test_header),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
