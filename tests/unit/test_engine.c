/* Scenario tests of the decision engine (src/engine/engine.c) with an
 * injected clock and a real LMDB store in synchronous mode: the greylist
 * timeline is walked through in simulated time, with no sleeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "engine/engine.h"
#include "policy/policy.h"
#include "store/lmdb.h"
#include "util/log.h"

struct fixture {
	char dir[64];
	char conffile[96];
	struct conf *conf;
	struct store *store;
	struct engine *engine;
	int64_t now;
	struct engine_msg msg;
	char action[POLICY_REPLY_MAX];
	int answers;
};

static int64_t fake_clock(void *arg)
{
	return ((struct fixture *)arg)->now;
}

static void on_done(void *arg, const char *action)
{
	struct fixture *f = arg;
	snprintf(f->action, sizeof(f->action), "%s", action);
	f->answers++;
}

static struct fixture *setup(const char *conftext)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[512];
	log_open(LOG_TO_NONE, "test");
	snprintf(f->dir, sizeof(f->dir), "/tmp/greyspf-engine-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->conffile, sizeof(f->conffile), "%s/greyspf.conf", f->dir);
	FILE *fp = fopen(f->conffile, "w");
	/* Greylisting alone: these scenarios have no resolver. */
	fprintf(fp, "checks = greylist\n%s", conftext);
	fclose(fp);
	f->conf = conf_load(f->conffile, err, sizeof(err));
	if (f->conf == NULL)
		fail_msg("%s", err);
	struct lmdb_config lc = {.path = f->dir, .sync = false};
	f->store = store_lmdb_open(NULL, &lc, err, sizeof(err));
	if (f->store == NULL)
		fail_msg("%s", err);
	struct engine_lists *l = engine_lists_load(f->conf, err, sizeof(err));
	if (l == NULL)
		fail_msg("%s", err);
	f->engine = engine_new(NULL, f->conf, l, f->store, NULL);
	engine_set_clock(f->engine, fake_clock, f);
	f->now = 1800000000;
	return f;
}

static void teardown(struct fixture *f)
{
	char cmd[128];
	engine_free(f->engine);
	store_close(f->store);
	conf_unref(f->conf);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
}

/* Sends one RCPT request and returns the action (synchronous store). */
static const char *decide(struct fixture *f, const char *ip,
			  const char *sender, const char *rcpt,
			  const char *instance)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf),
			 "request=smtpd_access_policy\nprotocol_state=RCPT\n"
			 "client_address=%s\nclient_name=unknown\n"
			 "sender=%s\nrecipient=%s\ninstance=%s\n\n",
			 ip, sender, rcpt, instance);
	struct policy_request req;
	char err[128];
	assert_int_equal(policy_parse((unsigned char *)buf, (size_t)n, &req,
				      err, sizeof(err)),
			 0);
	int before = f->answers;
	engine_decide(f->engine, &req, &f->msg, on_done, f);
	/* Exactly one answer, and synchronously with a base-less store. */
	assert_int_equal(f->answers, before + 1);
	policy_request_free(&req);
	return f->action;
}

#define DEFER "DEFER_IF_PERMIT 4.7.1 Greylisted, please try again in "

static void test_greylist_timeline(void **state)
{
	(void)state;
	struct fixture *f = setup("[greylist]\ndelay = 300\n"
				  "retry_window = 1d\nheader = yes\n"
				  "auto_whitelist = 0\n");
	assert_string_equal(decide(f, "192.0.2.1", "a@example.net",
				   "b@example.org", "m1"),
			    DEFER "300 seconds");
	f->now += 299; /* early retry, from another host of the /24 */
	assert_string_equal(decide(f, "192.0.2.99", "a@example.net",
				   "b@example.org", "m2"),
			    DEFER "1 seconds");
	f->now += 1; /* exactly the delay: passes, header once */
	const char *a = decide(f, "192.0.2.1", "a@example.net",
			       "b@example.org", "m3");
	assert_non_null(strstr(a, "PREPEND X-Greylist: delayed 300 seconds "
				  "by greyspf-"));
	/* the same message's next recipient (already passed): no 2nd header */
	f->now += 1;
	assert_string_equal(decide(f, "192.0.2.1", "a@example.net",
				   "b@example.org", "m3"),
			    "DUNNO");
	/* another /24 is another triplet */
	assert_string_equal(decide(f, "192.0.3.1", "a@example.net",
				   "b@example.org", "m4"),
			    DEFER "300 seconds");
	/* a passed triplet stays allowed long after */
	f->now += 30 * 86400;
	assert_string_equal(decide(f, "192.0.2.1", "a@example.net",
				   "b@example.org", "m5"),
			    "DUNNO");
	teardown(f);
}

static void test_retry_window_restarts(void **state)
{
	(void)state;
	struct fixture *f = setup("[greylist]\ndelay = 60\n"
				  "retry_window = 1h\n");
	decide(f, "2001:db8:1::1", "a@example.net", "b@example.org", "m1");
	f->now += 3601; /* too late: starts over */
	assert_string_equal(decide(f, "2001:db8:1::2", "a@example.net",
				   "b@example.org", "m2"),
			    DEFER "60 seconds");
	f->now += 60; /* same /64 */
	assert_string_equal(decide(f, "2001:db8:1::3", "a@example.net",
				   "b@example.org", "m3"),
			    "DUNNO");
	/* another /64 */
	assert_string_equal(decide(f, "2001:db8:2::3", "a@example.net",
				   "b@example.org", "m4"),
			    DEFER "60 seconds");
	teardown(f);
}

static void test_auto_whitelist(void **state)
{
	(void)state;
	/* awl counts at most one pass per hour (postgrey), so step hours */
	struct fixture *f = setup("[greylist]\ndelay = 60\n"
				  "auto_whitelist = 2\n");
	char rcpt[64];
	for (int i = 0; i < 2; i++) {
		snprintf(rcpt, sizeof(rcpt), "r%d@example.org", i);
		assert_string_equal(decide(f, "198.51.100.1", "s@example.net",
					   rcpt, "x"),
				    DEFER "60 seconds");
		f->now += 60;
		assert_string_equal(decide(f, "198.51.100.1", "s@example.net",
					   rcpt, "y"),
				    "DUNNO");
		f->now += 3600;
	}
	/* whitelisted: a brand new triplet from that network passes */
	assert_string_equal(decide(f, "198.51.100.77", "new@example.com",
				   "new@example.org", "z"),
			    "DUNNO");
	/* another network is still greylisted */
	assert_string_equal(decide(f, "198.51.101.77", "new@example.com",
				   "new@example.org", "z2"),
			    DEFER "60 seconds");
	teardown(f);
}

static void test_learning_and_overrides(void **state)
{
	(void)state;
	struct fixture *f = setup("[greylist]\nlearning = yes\n"
				  "[recipient postmaster@]\nchecks =\n"
				  "[recipient strict.example]\nlearning = no\n"
				  "delay = 10\n");
	assert_string_equal(decide(f, "192.0.2.1", "a@example.net",
				   "b@example.org", "m1"),
			    "DUNNO");
	assert_string_equal(decide(f, "192.0.2.1", "a@example.net",
				   "postmaster@example.org", "m1"),
			    "DUNNO");
	assert_string_equal(decide(f, "192.0.2.1", "a@example.net",
				   "b@strict.example", "m2"),
			    DEFER "10 seconds");
	teardown(f);
}

static void test_bad_client_address(void **state)
{
	(void)state;
	struct fixture *f = setup("");
	assert_string_equal(decide(f, "not-an-ip", "a@example.net",
				   "b@example.org", "m1"),
			    "DUNNO");
	assert_int_equal(engine_counters(f->engine)->bad_requests, 1);
	teardown(f);
}

static void test_custom_text_and_sanitising(void **state)
{
	(void)state;
	struct fixture *f = setup("[greylist]\ndelay = 120\n"
				  "text = Come back in %s s (%r)\n");
	assert_string_equal(decide(f, "192.0.2.1", "a@example.net",
				   "b@Example.ORG", "m1"),
			    "DEFER_IF_PERMIT 4.7.1 Come back in 120 s "
			    "(Example.ORG)");
	teardown(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greylist_timeline),
		cmocka_unit_test(test_retry_window_restarts),
		cmocka_unit_test(test_auto_whitelist),
		cmocka_unit_test(test_learning_and_overrides),
		cmocka_unit_test(test_bad_client_address),
		cmocka_unit_test(test_custom_text_and_sanitising),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
