/* Unit tests of configuration loading, validation and overrides
 * (src/conf/conf.c). */
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

static char path[64];

static struct conf *load_text(const char *text, char *err, size_t errsize)
{
	snprintf(path, sizeof(path), "/tmp/greyspf-conf-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct conf *c = conf_load(path, err, errsize);
	unlink(path);
	return c;
}

static void test_defaults(void **state)
{
	(void)state;
	struct conf *c = conf_defaults();
	assert_string_equal(c->listen, "inet:127.0.0.1:10023");
	assert_int_equal(c->policy.delay, 300);
	assert_int_equal(c->policy.retry_window, 2 * 86400);
	assert_int_equal(c->policy.max_age, 35 * 86400);
	assert_int_equal(c->policy.auto_whitelist, 5);
	assert_int_equal(c->ipv4_prefix, 24);
	assert_int_equal(c->ipv6_prefix, 64);
	assert_int_equal(c->reply_deadline, 90);
	assert_int_equal(c->policy.checks.n, 2);
	assert_int_equal(c->policy.checks.v[0], CONF_CHECK_SPF);
	assert_int_equal(c->policy.checks.v[1], CONF_CHECK_GREYLIST);
	assert_int_equal(c->policy.mailfrom_action[SPF_FAIL], CONF_SPF_REJECT);
	assert_int_equal(c->policy.mailfrom_action[SPF_SOFTFAIL],
			 CONF_SPF_PREPEND);
	assert_int_equal(c->policy.mailfrom_action[SPF_TEMPERROR],
			 CONF_SPF_DEFER);
	assert_int_equal(c->policy.helo_action[SPF_PASS], CONF_SPF_PREPEND);
	assert_int_equal(c->skip_nets.n, 2);
	assert_true(c->hostname[0] != '\0');
	assert_string_equal(c->authserv_id, c->hostname);
	conf_unref(c);
}

static void test_values_and_units(void **state)
{
	(void)state;
	char err[256];
	struct conf *c = load_text(
		"# comment\n"
		"listen = inet:127.0.0.1:1, unix:/tmp/x ; trailing comment\n"
		"checks = spf, greylist\n"
		"[greylist]\n"
		"delay = 2m\n"
		"retry_window = 3h\n"
		"max_age = 1w\n"
		"learning = yes\n"
		"[store]\n"
		"redis_timeout = 250ms\n"
		"[spf]\n"
		"mailfrom_softfail = reject\n"
		"header = both\n",
		err, sizeof(err));
	assert_non_null(c);
	assert_string_equal(c->listen, "inet:127.0.0.1:1, unix:/tmp/x");
	assert_int_equal(c->policy.checks.n, 2);
	assert_int_equal(c->policy.checks.v[0], CONF_CHECK_SPF);
	assert_int_equal(c->policy.delay, 120);
	assert_int_equal(c->policy.retry_window, 3 * 3600);
	assert_int_equal(c->policy.max_age, 7 * 86400);
	assert_true(c->policy.learning);
	assert_int_equal(c->redis_timeout_ms, 250);
	assert_int_equal(c->policy.mailfrom_action[SPF_SOFTFAIL],
			 CONF_SPF_REJECT);
	assert_int_equal(c->policy.spf_header, CONF_HDR_BOTH);
	conf_unref(c);
}

struct bad {
	const char *text;
	const char *msg; /* expected after "FILE:" */
};

static void test_errors_name_file_and_line(void **state)
{
	(void)state;
	static const struct bad cases[] = {
		{"delay = 5m\n", "1: unknown option \"delay\""},
		{"[greylist]\ndelay = soon\n", "2: delay: \"soon\" is not a"},
		{"\n\n[nosuch]\n", "3: unknown section [nosuch]"},
		{"checks = spf, dkim\n", "1: unknown check \"dkim\""},
		{"checks = spf, spf\n", "1: check \"spf\" twice"},
		{"[greylist]\nipv4_prefix = 33\n", "2: ipv4_prefix: \"33\""},
		{"just words\n", "1: expected name = value"},
		{"[greylist\n", "1: malformed section header"},
		{"[client 300.1.2.3]\n", "1: [client 300.1.2.3]: not an"},
		{"[recipient x@y]\nlisten = inet:1.2.3.4:5\n",
		 "2: \"listen\" cannot be set in an override"},
		{"[sender a.example]\nheader = yes\n",
		 "2: \"header\" is ambiguous here"},
		{"listen = tcp:1.2.3.4:5\n", " listen: \"tcp:1.2.3.4:5\" is "},
		{"[store]\nkey_hash = hmac\n", " key_hash = hmac needs"},
		{"[spf]\nskip_clients = 10.0.0.0/33\n", " skip_clients:"},
		{"[spf]\nmailfrom_fail = bounce\n",
		 "2: mailfrom_fail: unknown value"},
		{"reply_deadline = 100\n", "1: reply_deadline: \"100\""},
		{"[sender a.example]\ndelay = 1\n[sender A.example]\n",
		 "3: section [sender A.example] repeats the one at line 1"},
		{"[greylist]\ntext = caf\xc3\xa9 %s\n",
		 " [greylist] text: only printable ASCII"},
		{"[greylist]\ndelay = 10m\nretry_window = 5m\n",
		 " [greylist]: "},
		{"reply_deadline = 10\n[spf]\ntime_limit = 10\n",
		 " [spf] time_limit (10s) must be below reply_deadline"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[512] = "";
		struct conf *c = load_text(cases[i].text, err, sizeof(err));
		if (c != NULL)
			fail_msg("case %zu loaded: %s", i, cases[i].text);
		/* "PATH:LINE: msg" or "PATH: msg" */
		size_t pl = strlen(path);
		if (strncmp(err, path, pl) != 0 || err[pl] != ':' ||
		    strncmp(err + pl + 1, cases[i].msg,
			    strlen(cases[i].msg)) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s:%s...\"", i,
				 err, path, cases[i].msg);
	}
}

static void test_missing_file(void **state)
{
	(void)state;
	char err[256];
	assert_null(conf_load("/nonexistent/greyspf.conf", err, sizeof(err)));
	assert_string_equal(err,
			    "/nonexistent/greyspf.conf: No such file or "
			    "directory");
}

static void test_override_precedence(void **state)
{
	(void)state;
	char err[256];
	struct conf *c = load_text(
		"[recipient postmaster@]\n"
		"checks =\n"
		"[client 192.0.2.0/24]\n"
		"delay = 10\n"
		"[client 192.0.2.128/25]\n"
		"delay = 20\n"
		"[sender example.net]\n"
		"delay = 30\n"
		"[sender alice@example.net]\n"
		"delay = 40\n"
		"[recipient example.org]\n"
		"spf.header = none\n"
		"[recipient bob@example.org]\n"
		"greylist.header = yes\n"
		"[greylist]\n"
		"delay = 7\n",
		err, sizeof(err));
	assert_non_null(c);
	struct addr a1, a2, a3;
	addr_parse("192.0.2.1", &a1);
	addr_parse("192.0.2.200", &a2);
	addr_parse("198.51.100.1", &a3);
	struct conf_policy p;

	/* No override: the [greylist] default, even though it comes after
	 * the override sections in the file. */
	conf_policy_for(c, &a3, "x@other.test", "y@other.test", &p);
	assert_int_equal(p.delay, 7);
	assert_int_equal(p.checks.n, 2);
	/* client: the longer prefix wins */
	conf_policy_for(c, &a1, "x@other.test", "y@other.test", &p);
	assert_int_equal(p.delay, 10);
	conf_policy_for(c, &a2, "x@other.test", "y@other.test", &p);
	assert_int_equal(p.delay, 20);
	/* sender over client; exact address over domain; subdomain */
	conf_policy_for(c, &a2, "x@example.net", "y@other.test", &p);
	assert_int_equal(p.delay, 30);
	conf_policy_for(c, &a2, "Alice@Example.NET", "y@other.test", &p);
	assert_int_equal(p.delay, 40);
	conf_policy_for(c, &a3, "x@sub.example.net", "y@other.test", &p);
	assert_int_equal(p.delay, 30);
	/* recipient local part matches any domain; others untouched */
	conf_policy_for(c, &a2, "alice@example.net", "postmaster@z.test", &p);
	assert_int_equal(p.checks.n, 0);
	assert_int_equal(p.delay, 40);
	/* each option from the most specific section that sets it: bob's
	 * section sets greylist.header, the domain's spf.header */
	conf_policy_for(c, &a3, "x@other.test", "bob@example.org", &p);
	assert_true(p.greylist_header);
	assert_int_equal(p.spf_header, CONF_HDR_NONE);
	/* the extension does not hide the address; unqualified postmaster */
	conf_policy_for(c, &a3, "x@other.test", "Bob+lists@example.org", &p);
	assert_true(p.greylist_header);
	conf_policy_for(c, &a3, "x@other.test", "postmaster", &p);
	assert_int_equal(p.checks.n, 0);
	conf_policy_for(c, &a3, "x@other.test", "postmaster+x@z.test", &p);
	assert_int_equal(p.checks.n, 0);
	conf_policy_for(c, &a3, "x@other.test", "postmasters@z.test", &p);
	assert_int_equal(p.checks.n, 2);
	conf_policy_for(c, &a3, "x@other.test", "carol@example.org", &p);
	assert_false(p.greylist_header);
	assert_int_equal(p.spf_header, CONF_HDR_NONE);
	conf_unref(c);
}

static void test_print_roundtrip(void **state)
{
	(void)state;
	char err[256];
	struct conf *c = load_text("[greylist]\ndelay = 90\n"
				   "[sender example.net]\nspf.header = both\n",
				   err, sizeof(err));
	assert_non_null(c);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	conf_print(c, f);
	fclose(f);
	assert_non_null(strstr(buf, "\n[greylist]\ndelay = 90s\n"));
	assert_non_null(strstr(buf, "max_age = 5w\n"));
	assert_non_null(strstr(buf, "\n[sender example.net]\nspf.header = "
				    "both\n"));
	/* What conf_print wrote loads back to the same values (the
	 * override section's qualified names included). */
	struct conf *c2 = load_text(buf, err, sizeof(err));
	if (c2 == NULL)
		fail_msg("printed configuration does not load: %s", err);
	assert_int_equal(c2->policy.delay, 90);
	assert_int_equal(c2->noverrides, 1);
	conf_unref(c2);
	free(buf);
	conf_unref(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values_and_units),
		cmocka_unit_test(test_errors_name_file_and_line),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_override_precedence),
		cmocka_unit_test(test_print_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
