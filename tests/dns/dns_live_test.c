/*
 * dns_live_test - the resolver against the fixture DNS server.
 *
 * Run by run_live.py, which starts tests/fixtures/dnsserver.py twice with
 * tests/dns/zone.json (one server truncating UDP answers over 512 bytes
 * and logging its queries, one answering every query after 100 ms with
 * 1,000 names load0.test..load999.test) and calls:
 *
 *	dns_live_test PORT QUERY_LOG SLOW_PORT
 *
 * Each test names the behaviour it pins down; the program prints one line
 * per test and exits 1 if any failed. Timing figures are printed too.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "dns/resolver.h"
#include "util/addr.h"

/* Whole-test safety net: no single wait may take longer. */
#define WAIT_LIMIT_S 10.0
/* Lookups in flight at once in the load test, and its time budget. */
#define LOAD_COUNT 1000
#define LOAD_BUDGET_S 1.0
/* The fixture's delay for the slow server (run_live.py --delay). */
#define SLOW_DELAY_S 0.1
/* How long the poisoning test keeps lookups timing out: enough for
 * libunbound's backed-off retransmit timeout to pass its 12 s probe
 * threshold (services/cache/infra.c PROBE_MAXRTO) without a reset. */
#define POISON_SECONDS 14.0

static int failures;
static const char *current;
static struct event_base *base;
static int port, slow_port;
static const char *query_log;
static bool in_resolve; /* true while dns_resolve() runs */

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fail_at(__LINE__, #cond);                              \
			return;                                                \
		}                                                              \
	} while (0)

static void fail_at(int line, const char *what)
{
	fprintf(stderr, "FAIL %s (line %d): %s\n", current, line, what);
	failures++;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One captured answer (copied: the answer lives only during the call). */
struct result {
	bool done;
	int calls;
	enum dns_status status;
	size_t count;
	struct dns_rr rr[16];
	char names[16][1100];
	char text[4096];
	size_t text_len;
	uint32_t ttl;
	double at;
	bool called_inside; /* the callback ran inside dns_resolve() */
};

static void capture(void *arg, const struct dns_answer *a)
{
	struct result *res = arg;

	res->calls++;
	res->done = true;
	res->at = now_s();
	if (in_resolve)
		res->called_inside = true;
	res->status = a->status;
	res->count = a->count;
	res->ttl = a->ttl;
	for (size_t i = 0; i < a->count && i < 16; i++) {
		res->rr[i] = a->rr[i];
		if (a->rr[i].name) {
			snprintf(res->names[i], sizeof(res->names[i]), "%s",
				 a->rr[i].name);
			res->rr[i].name = res->names[i];
		}
		if (a->rr[i].text && i == 0 &&
		    a->rr[i].text_len < sizeof(res->text)) {
			memcpy(res->text, a->rr[i].text, a->rr[i].text_len);
			res->text_len = a->rr[i].text_len;
			res->rr[i].text = res->text;
		}
	}
}

static struct dns_resolver *make_resolver(int p, double timeout)
{
	char servers[64], err[256];
	struct dns_config cfg = {.servers = servers, .timeout = timeout};
	struct dns_resolver *r;

	snprintf(servers, sizeof(servers), "127.0.0.1@%d", p);
	r = dns_resolver_new(base, &cfg, err, sizeof(err));
	if (r == NULL)
		fprintf(stderr, "dns_resolver_new: %s\n", err);
	return r;
}

static void on_limit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/* Runs the loop until *done or WAIT_LIMIT_S passes; false on the limit. */
static bool wait_for(const bool *done)
{
	bool expired = false;
	struct timeval tv = {(time_t)WAIT_LIMIT_S, 0};
	struct event *limit = evtimer_new(base, on_limit, &expired);

	evtimer_add(limit, &tv);
	while (!*done && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(limit);
	return *done;
}

/* Resolves name/type on r and waits for the answer into res. */
static bool lookup(struct dns_resolver *r, const char *name, enum dns_type type,
		   struct result *res)
{
	struct dns_query *q;

	memset(res, 0, sizeof(*res));
	in_resolve = true;
	q = dns_resolve(r, name, type, capture, res);
	in_resolve = false;
	return q != NULL && wait_for(&res->done);
}

/* Lines of the query log that are exactly "PROTO NAME TYPE". */
static int log_count(const char *proto, const char *name, const char *type)
{
	char want[512], line[1024];
	int n = 0;
	FILE *f = fopen(query_log, "r");

	if (f == NULL)
		return -1;
	snprintf(want, sizeof(want), "%s %s %s\n", proto, name, type);
	while (fgets(line, sizeof(line), f))
		if (strcasecmp(line, want) == 0)
			n++;
	fclose(f);
	return n;
}

static bool has_addr(const struct result *res, const char *text)
{
	struct addr want;

	if (addr_parse(text, &want) < 0)
		return false;
	for (size_t i = 0; i < res->count; i++)
		if (addr_equal(&res->rr[i].addr, &want))
			return true;
	return false;
}

/* ---- tests ---- */

static struct dns_resolver *R; /* shared, timeout 2 s */

static void test_a_records(void)
{
	struct result res;

	CHECK(lookup(R, "a.test", DNS_T_A, &res));
	CHECK(res.status == DNS_OK);
	CHECK(res.count == 2);
	CHECK(has_addr(&res, "192.0.2.1"));
	CHECK(has_addr(&res, "192.0.2.2"));
	CHECK(res.ttl > 0 && res.ttl <= 300);
}

static void test_aaaa_record(void)
{
	struct result res;

	CHECK(lookup(R, "v6.test.", DNS_T_AAAA, &res));
	CHECK(res.status == DNS_OK);
	CHECK(res.count == 1);
	CHECK(res.rr[0].addr.family != 0);
	CHECK(has_addr(&res, "2001:db8::1"));
}

static void test_mx_pref_and_lowercase_name(void)
{
	struct result res;
	bool saw10 = false, saw20 = false;

	CHECK(lookup(R, "MX.test", DNS_T_MX, &res));
	CHECK(res.status == DNS_OK);
	CHECK(res.count == 2);
	for (size_t i = 0; i < res.count; i++) {
		if (res.rr[i].pref == 10)
			saw10 = strcmp(res.rr[i].name, "mx1.example.test") == 0;
		if (res.rr[i].pref == 20)
			saw20 = strcmp(res.rr[i].name, "mx2.example.test") == 0;
	}
	CHECK(saw10 && saw20);
}

static void test_null_mx_is_root(void)
{
	struct result res;

	CHECK(lookup(R, "null-mx.test", DNS_T_MX, &res));
	CHECK(res.status == DNS_OK && res.count == 1);
	CHECK(res.rr[0].pref == 0);
	CHECK(strcmp(res.rr[0].name, ".") == 0);
}

static void test_txt_strings_are_concatenated(void)
{
	struct result res;
	const char *want = "v=spf1 ip4:192.0.2.0/24 -all";

	CHECK(lookup(R, "a.test", DNS_T_TXT, &res));
	CHECK(res.status == DNS_OK && res.count == 1);
	CHECK(res.text_len == strlen(want));
	CHECK(memcmp(res.text, want, res.text_len) == 0);
}

static void test_ptr_record(void)
{
	struct result res;

	CHECK(lookup(R, "1.2.0.192.in-addr.arpa", DNS_T_PTR, &res));
	CHECK(res.status == DNS_OK && res.count == 1);
	CHECK(strcmp(res.rr[0].name, "host.example.test") == 0);
}

static void test_ptr_name_with_dot_in_label_is_escaped(void)
{
	struct result res;

	CHECK(lookup(R, "esc.test", DNS_T_PTR, &res));
	CHECK(res.status == DNS_OK && res.count == 1);
	CHECK(strcmp(res.rr[0].name, "we\\.ird.test") == 0);
}

static void test_cname_is_followed(void)
{
	struct result res;

	CHECK(lookup(R, "alias.test", DNS_T_A, &res));
	CHECK(res.status == DNS_OK && res.count == 2);
	CHECK(has_addr(&res, "192.0.2.1"));
}

static void test_nxdomain_and_nodata_differ(void)
{
	struct result res;

	CHECK(lookup(R, "absent.test", DNS_T_A, &res));
	CHECK(res.status == DNS_NXDOMAIN && res.count == 0);
	CHECK(lookup(R, "a.test", DNS_T_MX, &res));
	CHECK(res.status == DNS_NODATA && res.count == 0);
	CHECK(lookup(R, "v6.test", DNS_T_A, &res));
	CHECK(res.status == DNS_NODATA);
}

static void test_callback_never_inside_dns_resolve(void)
{
	struct result res;

	/* a.test/A is cached by now: the likeliest case for a synchronous
	 * answer. */
	CHECK(lookup(R, "a.test", DNS_T_A, &res));
	CHECK(res.calls == 1);
	CHECK(!res.called_inside);
}

static void test_big_txt_over_tcp_is_complete(void)
{
	struct result res;

	/* 900 bytes in 4 strings; the server truncates UDP over 512. */
	CHECK(lookup(R, "big.test", DNS_T_TXT, &res));
	CHECK(res.status == DNS_OK && res.count == 1);
	CHECK(res.text_len == 900);
	for (size_t i = 0; i < 900; i++)
		CHECK(res.text[i] == (char)('a' + i / 225));
	CHECK(log_count("udp", "big.test.", "TXT") >= 1);
	CHECK(log_count("tcp", "big.test.", "TXT") >= 1);

	/* 2,000 bytes: larger than the EDNS buffer (1232) anyway. */
	CHECK(lookup(R, "huge.test", DNS_T_TXT, &res));
	CHECK(res.status == DNS_OK && res.count == 1);
	CHECK(res.text_len == 2000);
	CHECK(res.text[0] == 'A' && res.text[1999] == 'H');
	CHECK(log_count("tcp", "huge.test.", "TXT") >= 1);
}

static void test_second_lookup_is_served_from_cache(void)
{
	struct result res;

	CHECK(lookup(R, "cached.test", DNS_T_A, &res));
	CHECK(res.status == DNS_OK);
	CHECK(lookup(R, "cached.test", DNS_T_A, &res));
	CHECK(res.status == DNS_OK && has_addr(&res, "192.0.2.9"));
	CHECK(log_count("udp", "cached.test.", "A") == 1);

	/* Negative answers too (the fixture sends a SOA, RFC 2308). */
	CHECK(lookup(R, "gone.test", DNS_T_A, &res));
	CHECK(res.status == DNS_NXDOMAIN);
	CHECK(lookup(R, "gone.test", DNS_T_A, &res));
	CHECK(res.status == DNS_NXDOMAIN);
	CHECK(log_count("udp", "gone.test.", "A") == 1);
}

static void test_timeout_within_configured_time(void)
{
	struct dns_resolver *r = make_resolver(port, 0.5);
	struct result res;
	double t0, took;

	CHECK(r != NULL);
	t0 = now_s();
	if (!lookup(r, "slow.test", DNS_T_A, &res)) {
		dns_resolver_free(r);
		CHECK(!"no answer at all");
	}
	took = res.at - t0;
	printf("  timeout after %.3f s (configured 0.5 s)\n", took);
	dns_resolver_free(r);
	CHECK(res.status == DNS_TIMEOUT);
	CHECK(took >= 0.45 && took < 0.8);
}

static void test_timeouts_do_not_poison_the_forwarder(void)
{
	/* Names that never answer are looked up one after the other for
	 * POISON_SECONDS (libunbound's retransmit timeout for the forwarder
	 * passes 12 s in that time if nothing resets it), as a run of the
	 * SPF suite's TIMEOUT owners does. Other names must still resolve
	 * through the same forwarder afterwards. */
	struct dns_resolver *r = make_resolver(port, 1.0);
	const char *slow[] = {"slow.test", "slow2.test", "slow3.test",
			      "slow4.test"};
	struct result res;
	char name[32];
	double t0 = now_s();
	int rounds = 0;

	CHECK(r != NULL);
	while (now_s() - t0 < POISON_SECONDS) {
		if (!lookup(r, slow[rounds++ % 4], DNS_T_A, &res) ||
		    (res.status != DNS_TIMEOUT && res.status != DNS_SERVFAIL)) {
			dns_resolver_free(r);
			CHECK(!"slow lookup did not fail");
		}
	}
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "n%d.test", i);
		if (!lookup(r, name, DNS_T_A, &res) || res.status != DNS_OK) {
			fprintf(stderr, "  %s: %s after %d slow lookups\n",
				name, dns_status_name(res.status), rounds);
			dns_resolver_free(r);
			CHECK(!"lookup failed after timeouts");
		}
	}
	dns_resolver_free(r);
}

static void never(void *arg, const struct dns_answer *a)
{
	(void)a;
	*(int *)arg += 1;
}

static void test_cancelled_lookup_never_calls_back(void)
{
	int calls = 0;
	struct dns_query *q;
	struct result res;

	q = dns_resolve(R, "after.test", DNS_T_A, never, &calls);
	CHECK(q != NULL);
	CHECK(dns_pending(R) == 1);
	dns_cancel(q);
	CHECK(dns_pending(R) == 0);
	/* Let the answer arrive and be dropped. */
	CHECK(lookup(R, "n0.test", DNS_T_A, &res));
	CHECK(lookup(R, "after.test", DNS_T_A, &res));
	CHECK(res.status == DNS_OK);
	CHECK(calls == 0);
}

static void test_free_with_pending_lookups(void)
{
	struct dns_resolver *r = make_resolver(port, 2.0);
	int calls = 0;

	CHECK(r != NULL);
	CHECK(dns_resolve(r, "slow.test", DNS_T_A, never, &calls));
	CHECK(dns_resolve(r, "n1.test", DNS_T_A, never, &calls));
	CHECK(dns_pending(r) == 2);
	dns_resolver_free(r);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(calls == 0);
}

static void test_invalid_names_are_refused(void)
{
	int calls = 0;
	char long_label[80], long_name[300];

	memset(long_label, 'x', 64);
	long_label[64] = '\0';
	memset(long_name, 0, sizeof(long_name));
	for (int i = 0; i < 64; i++)
		memcpy(long_name + 4 * i, "abc.", 4);
	CHECK(dns_resolve(R, "", DNS_T_A, never, &calls) == NULL);
	CHECK(dns_resolve(R, "a..test", DNS_T_A, never, &calls) == NULL);
	CHECK(dns_resolve(R, ".a.test", DNS_T_A, never, &calls) == NULL);
	CHECK(dns_resolve(R, long_label, DNS_T_A, never, &calls) == NULL);
	CHECK(dns_resolve(R, long_name, DNS_T_A, never, &calls) == NULL);
	CHECK(dns_resolve(R, "a.test", (enum dns_type)99, never, &calls) ==
	      NULL);
	CHECK(dns_pending(R) == 0);
}

static void test_bad_configuration_is_reported(void)
{
	char err[256] = "";
	struct dns_config cfg = {.servers = "127.0.0.1@5353, not-an-ip"};

	CHECK(dns_resolver_new(base, &cfg, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "not-an-ip") != NULL);
	cfg.servers = "127.0.0.1@0";
	CHECK(dns_resolver_new(base, &cfg, err, sizeof(err)) == NULL);
	cfg.servers = "1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,"
		      "1.1.1.7,1.1.1.8,1.1.1.9";
	CHECK(dns_resolver_new(base, &cfg, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "more than") != NULL);
}

static void test_ipv6_forwarder(void)
{
	char servers[64], err[256];
	struct dns_config cfg = {.servers = servers, .timeout = 2.0};
	struct dns_resolver *r;
	struct result res;

	snprintf(servers, sizeof(servers), "::1@%d", port);
	r = dns_resolver_new(base, &cfg, err, sizeof(err));
	CHECK(r != NULL);
	if (!lookup(r, "n2.test", DNS_T_A, &res)) {
		dns_resolver_free(r);
		CHECK(!"no answer over ::1");
	}
	dns_resolver_free(r);
	CHECK(res.status == DNS_OK && has_addr(&res, "192.0.2.102"));
}

static void test_resolv_conf_and_recursion_modes_start(void)
{
	char err[256] = "";
	struct dns_config cfg = {.servers = NULL};
	struct dns_resolver *r;

	/* No lookups: only loopback may be used in tests. */
	r = dns_resolver_new(base, &cfg, err, sizeof(err));
	CHECK(r != NULL);
	dns_resolver_free(r);
	cfg.servers = "";
	cfg.recursion = 1;
	r = dns_resolver_new(base, &cfg, err, sizeof(err));
	CHECK(r != NULL);
	dns_resolver_free(r);
}

/* The SPF engine's pattern: callbacks start the next lookups and cancel
 * others that are no longer needed. */
struct chain {
	struct dns_resolver *r;
	struct dns_query *victim;
	int started, answered, cancelled_calls;
	bool done;
};

static void chain_victim_cb(void *arg, const struct dns_answer *a)
{
	struct chain *c = arg;

	(void)a;
	c->cancelled_calls++;
}

static void chain_cb(void *arg, const struct dns_answer *a)
{
	struct chain *c = arg;

	c->answered++;
	if (a->status != DNS_OK)
		c->done = true; /* makes the test fail below */
	if (c->victim) {
		dns_cancel(c->victim);
		c->victim = NULL;
	}
	if (c->started < 10) {
		char name[32];

		snprintf(name, sizeof(name), "n%d.test", c->started % 12);
		c->started++;
		dns_resolve(c->r, name, DNS_T_A, chain_cb, c);
	} else if (c->answered == c->started) {
		c->done = true;
	}
}

static void test_callbacks_may_start_and_cancel_lookups(void)
{
	struct chain c = {.r = R};

	/* slow.test never answers: the victim is still pending when the
	 * first answer of the chain cancels it. */
	c.victim = dns_resolve(R, "slow.test", DNS_T_TXT, chain_victim_cb, &c);
	CHECK(c.victim != NULL);
	c.started = 1;
	CHECK(dns_resolve(R, "n3.test", DNS_T_A, chain_cb, &c) != NULL);
	CHECK(wait_for(&c.done));
	CHECK(c.answered == 10);
	CHECK(c.cancelled_calls == 0);
	CHECK(dns_pending(R) == 0);
}

struct load {
	int done, ok;
	double last;
};

static void load_cb(void *arg, const struct dns_answer *a)
{
	struct load *l = arg;

	l->done++;
	if (a->status == DNS_OK && a->count == 1)
		l->ok++;
	l->last = now_s();
}

static void test_thousand_lookups_in_flight(void)
{
	struct dns_resolver *r = make_resolver(slow_port, 5.0);
	struct load l = {0};
	bool all = false, expired = false;
	char name[32];
	double t0, took;
	struct timeval tv = {(time_t)WAIT_LIMIT_S, 0};
	struct event *limit;

	CHECK(r != NULL);
	t0 = now_s();
	for (int i = 0; i < LOAD_COUNT; i++) {
		snprintf(name, sizeof(name), "load%d.test", i);
		if (dns_resolve(r, name, DNS_T_A, load_cb, &l) == NULL) {
			dns_resolver_free(r);
			CHECK(!"dns_resolve failed");
		}
	}
	limit = evtimer_new(base, on_limit, &expired);
	evtimer_add(limit, &tv);
	while (!all && !expired) {
		event_base_loop(base, EVLOOP_ONCE);
		all = l.done == LOAD_COUNT;
	}
	event_free(limit);
	took = (all ? l.last : now_s()) - t0;
	printf("  %d lookups (server delay %.0f ms): %d answered, %d ok, "
	       "%.3f s\n",
	       LOAD_COUNT, SLOW_DELAY_S * 1000, l.done, l.ok, took);
	dns_resolver_free(r);
	CHECK(all);
	CHECK(l.ok == LOAD_COUNT);
	CHECK(took < LOAD_BUDGET_S);
}

struct test {
	const char *name;
	void (*fn)(void);
};

int main(int argc, char **argv)
{
	static const struct test tests[] = {
#define T(f) {#f, f}
	    T(test_bad_configuration_is_reported),
	    T(test_invalid_names_are_refused),
	    T(test_a_records),
	    T(test_aaaa_record),
	    T(test_mx_pref_and_lowercase_name),
	    T(test_null_mx_is_root),
	    T(test_txt_strings_are_concatenated),
	    T(test_ptr_record),
	    T(test_ptr_name_with_dot_in_label_is_escaped),
	    T(test_cname_is_followed),
	    T(test_nxdomain_and_nodata_differ),
	    T(test_callback_never_inside_dns_resolve),
	    T(test_big_txt_over_tcp_is_complete),
	    T(test_second_lookup_is_served_from_cache),
	    T(test_cancelled_lookup_never_calls_back),
	    T(test_callbacks_may_start_and_cancel_lookups),
	    T(test_ipv6_forwarder),
	    T(test_resolv_conf_and_recursion_modes_start),
	    T(test_timeout_within_configured_time),
	    T(test_timeouts_do_not_poison_the_forwarder),
	    T(test_free_with_pending_lookups),
	    T(test_thousand_lookups_in_flight),
#undef T
	};
	const char *only = getenv("DNS_TEST_ONLY");

	if (argc != 4) {
		fprintf(stderr, "usage: %s PORT QUERY_LOG SLOW_PORT\n",
			argv[0]);
		return 2;
	}
	port = atoi(argv[1]);
	query_log = argv[2];
	slow_port = atoi(argv[3]);
	base = event_base_new();
	R = make_resolver(port, 2.0);
	if (base == NULL || R == NULL)
		return 2;
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		int before = failures;

		if (only && strstr(tests[i].name, only) == NULL)
			continue;
		current = tests[i].name;
		tests[i].fn();
		printf("%s %s\n", failures == before ? "ok  " : "FAIL",
		       tests[i].name);
		fflush(stdout);
	}
	dns_resolver_free(R);
	event_base_free(base);
	printf("%d failure(s)\n", failures);
	return failures ? 1 : 0;
}
