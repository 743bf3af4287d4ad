/* Unit tests of the policy protocol codec (src/policy/policy.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/policy.h"

static const char full_request[] =
	"request=smtpd_access_policy\n"
	"protocol_state=RCPT\n"
	"protocol_name=ESMTP\n"
	"client_address=192.0.2.10\n"
	"client_name=mail.example.com\n"
	"reverse_client_name=mail.example.com\n"
	"helo_name=mail.example.com\n"
	"sender=alice@example.com\n"
	"recipient=bob@example.org\n"
	"recipient_count=0\n"
	"queue_id=\n"
	"instance=123.456.7.8\n"
	"size=12345\n"
	"etrn_domain=\n"
	"stress=\n"
	"sasl_method=\n"
	"ccert_subject=\n"
	"policy_context=x=y\n"
	"\n";

static enum policy_frame_status frame_all(const char *s, size_t *reqlen)
{
	size_t scanned = 0;
	char err[128];
	return policy_frame((const unsigned char *)s, strlen(s), &scanned,
			    reqlen, err, sizeof(err));
}

static void test_frame_complete_request(void **state)
{
	(void)state;
	size_t reqlen = 0;
	assert_int_equal(frame_all(full_request, &reqlen),
			 POLICY_FRAME_COMPLETE);
	assert_int_equal(reqlen, strlen(full_request));
}

static void test_frame_byte_by_byte(void **state)
{
	(void)state;
	size_t n = strlen(full_request), scanned = 0, reqlen = 0;
	char err[128];
	for (size_t i = 1; i < n; i++)
		assert_int_equal(policy_frame((const unsigned char *)
						      full_request,
					      i, &scanned, &reqlen, err,
					      sizeof(err)),
				 POLICY_FRAME_MORE);
	assert_int_equal(policy_frame((const unsigned char *)full_request, n,
				      &scanned, &reqlen, err, sizeof(err)),
			 POLICY_FRAME_COMPLETE);
	assert_int_equal(reqlen, n);
	assert_int_equal(scanned, 0);
}

static void test_frame_two_requests_in_one_read(void **state)
{
	(void)state;
	char buf[2048];
	snprintf(buf, sizeof(buf), "%s%s", full_request, full_request);
	size_t reqlen = 0;
	assert_int_equal(frame_all(buf, &reqlen), POLICY_FRAME_COMPLETE);
	assert_int_equal(reqlen, strlen(full_request));
}

static void test_frame_line_too_long(void **state)
{
	(void)state;
	char *buf = malloc(POLICY_LINE_MAX + 2);
	memset(buf, 'a', POLICY_LINE_MAX + 1);
	buf[POLICY_LINE_MAX + 1] = '\0';
	size_t reqlen;
	assert_int_equal(frame_all(buf, &reqlen), POLICY_FRAME_ERROR);
	/* One byte under the limit is still "more". */
	buf[POLICY_LINE_MAX - 1] = '\0';
	assert_int_equal(frame_all(buf, &reqlen), POLICY_FRAME_MORE);
	free(buf);
}

static void test_frame_request_too_large(void **state)
{
	(void)state;
	size_t cap = POLICY_REQUEST_MAX + 64;
	char *buf = malloc(cap + 1);
	size_t o = 0;
	while (o + 20 < cap)
		o += (size_t)sprintf(buf + o, "x=%016d\n", 1);
	buf[o] = '\0';
	size_t reqlen;
	assert_int_equal(frame_all(buf, &reqlen), POLICY_FRAME_ERROR);
	free(buf);
}

static void test_parse_full_request(void **state)
{
	(void)state;
	struct policy_request r;
	char err[128];
	assert_int_equal(policy_parse((const unsigned char *)full_request,
				      strlen(full_request), &r, err,
				      sizeof(err)),
			 0);
	assert_string_equal(r.v[POLICY_CLIENT_ADDRESS], "192.0.2.10");
	assert_string_equal(r.v[POLICY_SENDER], "alice@example.com");
	assert_string_equal(r.v[POLICY_RECIPIENT], "bob@example.org");
	assert_string_equal(r.v[POLICY_INSTANCE], "123.456.7.8");
	assert_string_equal(r.v[POLICY_QUEUE_ID], "");
	assert_int_equal(r.len[POLICY_QUEUE_ID], 0);
	/* split at the first '=' */
	assert_string_equal(r.v[POLICY_POLICY_CONTEXT], "x=y");
	/* never sent: empty */
	assert_string_equal(r.v[POLICY_SASL_USERNAME], "");
	assert_int_equal(r.nlines, 18);
	policy_request_free(&r);
}

struct bad_case {
	const char *name;
	const char *input;
	size_t len; /* 0: strlen */
	const char *err_prefix;
};

static void test_parse_rejects_garbage(void **state)
{
	(void)state;
	static const struct bad_case cases[] = {
		{"no equals", "request=smtpd_access_policy\ngarbage\n\n", 0,
		 "line without '='"},
		{"empty name", "request=smtpd_access_policy\n=x\n\n", 0,
		 "empty attribute name"},
		{"nul byte", "request=smtpd_access_policy\nsender=a\0b\n\n",
		 39, "NUL byte"},
		{"missing request", "sender=a@b\n\n", 0, "no \"request\""},
		{"wrong request", "request=junk\n\n", 0,
		 "unknown request type"},
		{"empty", "\n", 0, "no \"request\""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct policy_request r;
		char err[256] = "";
		size_t len = cases[i].len ? cases[i].len
					  : strlen(cases[i].input);
		int rc = policy_parse((const unsigned char *)cases[i].input,
				      len, &r, err, sizeof(err));
		if (rc != -1 || strncmp(err, cases[i].err_prefix,
					strlen(cases[i].err_prefix)) != 0)
			fail_msg("case %s: rc=%d err=%s", cases[i].name, rc,
				 err);
	}
}

static void test_parse_too_many_attributes(void **state)
{
	(void)state;
	char buf[8192];
	size_t o = (size_t)sprintf(buf, "request=smtpd_access_policy\n");
	for (int i = 0; i < POLICY_ATTRS_MAX; i++)
		o += (size_t)sprintf(buf + o, "x%d=1\n", i);
	buf[o++] = '\n';
	struct policy_request r;
	char err[128];
	assert_int_equal(policy_parse((const unsigned char *)buf, o, &r, err,
				      sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "more than"));
}

static void test_reply_format(void **state)
{
	(void)state;
	char buf[POLICY_REPLY_MAX];
	assert_int_equal(policy_format_reply(buf, sizeof(buf), "DUNNO"), 14);
	assert_string_equal(buf, "action=DUNNO\n\n");
	/* empty action would mean OK to Postfix: never sent */
	policy_format_reply(buf, sizeof(buf), "");
	assert_string_equal(buf, "action=DUNNO\n\n");
	/* CR, LF and 8-bit bytes cannot reach Postfix */
	policy_format_reply(buf, sizeof(buf), "REJECT a\r\nb\xc3\xa9");
	assert_string_equal(buf, "action=REJECT a??b??\n\n");
	/* capped */
	char big[2000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	int n = policy_format_reply(buf, sizeof(buf), big);
	assert_int_equal(n, 7 + POLICY_ACTION_MAX + 2);
	assert_int_equal(policy_format_reply(buf, 10, "DUNNO"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_complete_request),
		cmocka_unit_test(test_frame_byte_by_byte),
		cmocka_unit_test(test_frame_two_requests_in_one_read),
		cmocka_unit_test(test_frame_line_too_long),
		cmocka_unit_test(test_frame_request_too_large),
		cmocka_unit_test(test_parse_full_request),
		cmocka_unit_test(test_parse_rejects_garbage),
		cmocka_unit_test(test_parse_too_many_attributes),
		cmocka_unit_test(test_reply_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
