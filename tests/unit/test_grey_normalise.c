/*
 * test_grey_normalise - sender and recipient normalisation (grey/normalise).
 *
 * Each table row is one input and its exact expected output; NULL means
 * the function must return -1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "grey/normalise.h"

struct ncase {
	const char *in;
	const char *want;
};

static const struct ncase sender_cases[] = {
    /* plain and case */
    {"alice@example.com", "alice@example.com"},
    {"Alice@Example.COM", "alice@example.com"},
    /* null sender stays null */
    {"", ""},
    /* extension */
    {"alice+news@example.com", "alice@example.com"},
    {"alice+a+b@example.com", "alice@example.com"},
    {"+alice@example.com", "+alice@example.com"}, /* would empty it */
    {"alice-news@example.com", "alice-news@example.com"},
    /* VERP numbers, postgrey's \b\d+\b */
    {"bounce-123-456@x.org", "bounce-#-#@x.org"},
    {"bounce-123-456@lists.example.org", "bounce-#-#@lists.example.org"},
    {"user123@example.com", "user123@example.com"},
    {"123abc@example.com", "123abc@example.com"},
    {"123@example.com", "#@example.com"},
    {"a.1.b@example.com", "a.#.b@example.com"},
    {"a_1@example.com", "a_1@example.com"},
    {"1.2.3@example.com", "#.#.#@example.com"},
    {"list-request-42=bob=example.net@lists.org",
     "list-request-#=bob=example.net@lists.org"},
    {"msg-2024-11-26-0001@example.com", "msg-#-#-#-#@example.com"},
    /* numbers in the domain are left alone */
    {"a@123.example.com", "a@123.example.com"},
    /* extension first, then numbers */
    {"owner-list+M123=bob=x.org@lists.org", "owner-list@lists.org"},
    /* BATV, the draft's order prvs=tag-val=loc-core */
    {"prvs=1234abcdef=alice@example.com", "alice@example.com"},
    {"PRVS=0123ABCDEF=Alice@example.com", "alice@example.com"},
    /* BATV, the reversed order prvs=loc-core=tag-val */
    {"prvs=alice=1234abcdef@example.com", "alice@example.com"},
    /* both look like tags: the draft's order wins */
    {"prvs=1234abcdef=9876543210@example.com", "#@example.com"},
    /* neither looks like a tag: the draft's order */
    {"prvs=short=alice@example.com", "alice@example.com"},
    /* local=prvs=tag */
    {"alice=prvs=1234abcdef@example.com", "alice@example.com"},
    /* not three parts: untouched apart from numbers */
    {"prvs=1234abcdef@example.com", "prvs=1234abcdef@example.com"},
    {"prvs=a=b=c@example.com", "prvs=a=b=c@example.com"},
    {"prvs==alice@example.com", "alice@example.com"},
    {"prvs=1234abcdef=@example.com", "prvs=1234abcdef=@example.com"},
    /* BATV with extension and VERP in the user */
    {"prvs=1234abcdef=bounce-77@example.com", "bounce-#@example.com"},
    /* SRS0: the original sender, whatever the hash and timestamp */
    {"SRS0=HHH=TT=example.com=alice@forwarder.net", "alice@example.com"},
    {"SRS0=abcd=5Q=Example.COM=Alice@forwarder.net", "alice@example.com"},
    {"SRS0=zzzz=7Z=example.com=alice@forwarder.net", "alice@example.com"},
    {"srs0+abcd=5Q=example.com=alice@forwarder.net", "alice@example.com"},
    {"SRS0-abcd=5Q=example.com=alice@forwarder.net", "alice@example.com"},
    /* local part holding "=" survives */
    {"SRS0=abcd=5Q=example.com=a=b@forwarder.net", "a=b@example.com"},
    /* SRS1: the original sender through two forwarders */
    {"SRS1=HHH=forwarder.net==HHH=TT=example.com=alice@fwd2.org",
     "alice@example.com"},
    {"SRS1=x9y8=forwarder.net=+abcd=5Q=example.com=alice@fwd2.org",
     "alice@example.com"},
    /* SRS of a BATV / VERP sender */
    {"SRS0=abcd=5Q=example.com=prvs=1234abcdef=alice@fwd.net",
     "alice@example.com"},
    {"SRS0=abcd=5Q=lists.org=bounce-12-34@fwd.net", "bounce-#-#@lists.org"},
    /* malformed SRS: only the usual folding */
    {"SRS0=abcd=5Q=example.com@fwd.net", "srs0=abcd=5q=example.com@fwd.net"},
    {"SRS0=abcd=5Q==alice@fwd.net", "srs0=abcd=5q==alice@fwd.net"},
    {"SRS0@fwd.net", "srs0@fwd.net"},
    {"SRS1=HHH=forwarder.net=HHH=TT=example.com=alice@fwd2.org",
     "srs1=hhh=forwarder.net=hhh=tt=example.com=alice@fwd2.org"},
    {"SRS2=a=b=c=d@fwd.net", "srs2=a=b=c=d@fwd.net"},
    /* no "@": only lower case */
    {"Postmaster", "postmaster"},
    {"bounce-123", "bounce-123"},
    /* several "@": the last one splits */
    {"a@b@Example.com", "a@b@example.com"},
    {"a+x@b@example.com", "a@example.com"},
    /* empty local part: lower case only */
    {"@Example.com", "@example.com"},
    /* empty domain */
    {"alice+x@", "alice@"},
    /* quoted local part: lower case only */
    {"\"Alice+x 12\"@example.com", "\"alice+x 12\"@example.com"},
    /* 8-bit bytes are kept; they are not word characters */
    {"J\xc3\xb6rg+x@example.com", "j\xc3\xb6rg@example.com"},
    {"\xc3\xb6"
     "12@example.com",
     "\xc3\xb6#@example.com"},
    {"Caf\xc3\xa9@EXAMPLE.com", "caf\xc3\xa9@example.com"},
};

static void test_sender_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(sender_cases) / sizeof(*sender_cases);
	     i++) {
		const struct ncase *c = &sender_cases[i];
		char out[GREY_ADDR_MAX + 1];
		ssize_t n =
		    grey_norm_sender(c->in, strlen(c->in), out, sizeof(out));
		if (c->want == NULL) {
			assert_int_equal(n, -1);
			continue;
		}
		if (n < 0 || strcmp(out, c->want) != 0)
			fail_msg("case %zu: %s -> %s (want %s)", i, c->in,
				 n < 0 ? "(-1)" : out, c->want);
		assert_int_equal(n, (ssize_t)strlen(c->want));
	}
}

/* SRS retries with a new hash and timestamp land on one key. */
static void test_sender_srs_stable(void **state)
{
	(void)state;
	const char *tries[] = {
	    "SRS0=aaaa=AB=example.com=alice@fwd.net",
	    "SRS0=bbbb=AC=example.com=alice@fwd.net",
	    "SRS0=cccc=AD=example.com=alice+x@fwd.net",
	    "alice@example.com",
	};
	for (size_t i = 0; i < sizeof(tries) / sizeof(*tries); i++) {
		char out[64];
		assert_int_equal(grey_norm_sender(tries[i], strlen(tries[i]),
						  out, sizeof(out)),
				 17);
		assert_string_equal(out, "alice@example.com");
	}
}

static void test_sender_delimiters(void **state)
{
	(void)state;
	char out[64];
	const char *in = "alice-news+x@example.com";
	assert_int_equal(
	    grey_norm_sender_d(in, strlen(in), "-+", out, sizeof(out)), 17);
	assert_string_equal(out, "alice@example.com");
	/* "" disables stripping */
	assert_int_equal(
	    grey_norm_sender_d(in, strlen(in), "", out, sizeof(out)), 24);
	assert_string_equal(out, "alice-news+x@example.com");
}

static void test_sender_bounds(void **state)
{
	(void)state;
	char out[8];
	/* "a@b.org" is 7 bytes: fits exactly with its NUL */
	assert_int_equal(grey_norm_sender("A@B.org", 7, out, 8), 7);
	assert_string_equal(out, "a@b.org");
	assert_int_equal(grey_norm_sender("ab@b.org", 8, out, 8), -1);
	/* null sender needs only the NUL */
	assert_int_equal(grey_norm_sender("", 0, out, 1), 0);
	assert_int_equal(grey_norm_sender("", 0, out, 0), -1);
	/* a long SRS address that shrinks into a small buffer */
	const char *srs = "SRS0=abcdefgh=ZZ=b.org=a@forwarder.example.net";
	assert_int_equal(grey_norm_sender(srs, strlen(srs), out, 8), 7);
	assert_string_equal(out, "a@b.org");
	/* overlong input */
	char big[2000];
	memset(big, 'a', sizeof(big));
	big[1000] = '@';
	char o2[GREY_ADDR_MAX + 1];
	assert_int_equal(grey_norm_sender(big, sizeof(big), o2, sizeof(o2)),
			 -1);
	/* only len bytes are read */
	assert_int_equal(grey_norm_sender("a@b.orgXYZ", 7, out, 8), 7);
	assert_string_equal(out, "a@b.org");
}

static void test_sender_nul(void **state)
{
	(void)state;
	char out[32];
	assert_int_equal(grey_norm_sender("a\0b@x.org", 9, out, sizeof(out)),
			 -1);
	assert_int_equal(
	    grey_norm_recipient("a@x\0.org", 8, NULL, out, sizeof(out)), -1);
}

static const struct ncase rcpt_cases[] = {
    {"Bob@Example.ORG", "bob@example.org"},
    {"bob+folder@example.org", "bob@example.org"},
    {"bob+a+b@example.org", "bob@example.org"},
    {"+bob@example.org", "+bob@example.org"},
    /* numbers are kept in recipients */
    {"user123@example.org", "user123@example.org"},
    {"bounce-123@example.org", "bounce-123@example.org"},
    {"postmaster", "postmaster"},
    {"", ""},
    {"a@b@example.org", "a@b@example.org"},
    {"@example.org", "@example.org"},
    {"\"Bob+X\"@example.org", "\"bob+x\"@example.org"},
    {"B\xc3\xb6"
     "b+x@example.org",
     "b\xc3\xb6"
     "b@example.org"},
    {"prvs=1234abcdef=bob@example.org", "prvs=1234abcdef=bob@example.org"},
};

static void test_recipient_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(*rcpt_cases); i++) {
		const struct ncase *c = &rcpt_cases[i];
		char out[GREY_ADDR_MAX + 1];
		ssize_t n = grey_norm_recipient(c->in, strlen(c->in), NULL, out,
						sizeof(out));
		if (n < 0 || strcmp(out, c->want) != 0)
			fail_msg("case %zu: %s -> %s (want %s)", i, c->in,
				 n < 0 ? "(-1)" : out, c->want);
		assert_int_equal(n, (ssize_t)strlen(c->want));
	}
}

static void test_recipient_delimiters(void **state)
{
	(void)state;
	char out[64];
	const char *in = "Bob-list@example.org";
	assert_int_equal(
	    grey_norm_recipient(in, strlen(in), "-", out, sizeof(out)), 15);
	assert_string_equal(out, "bob@example.org");
	assert_int_equal(
	    grey_norm_recipient(in, strlen(in), "+", out, sizeof(out)), 20);
	assert_string_equal(out, "bob-list@example.org");
	assert_int_equal(grey_norm_recipient(in, strlen(in), NULL, out, 20),
			 -1);
}

/* A fixed-seed generator, so a failure can be replayed. */
static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

/* Random addresses made of the bytes the rules care about: the output is
 * never longer than the input, always NUL-terminated, never -1 when the
 * buffer holds the input. */
static void test_random_bounds(void **state)
{
	(void)state;
	static const char alpha[] = "@@+=-._0123456789aAbzSRS01prvs\"\x80\xff ";
	char in[400], out[401];
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = rng() % sizeof(in);
		for (size_t i = 0; i < len; i++)
			in[i] = alpha[rng() % (sizeof(alpha) - 1)];
		ssize_t n = grey_norm_sender(in, len, out, len + 1);
		assert_true(n >= 0 && (size_t)n <= len);
		assert_int_equal(strlen(out), (size_t)n);
		n = grey_norm_recipient(in, len, "+-", out, len + 1);
		assert_true(n >= 0 && (size_t)n <= len);
		assert_int_equal(strlen(out), (size_t)n);
		/* a buffer one byte short of the result fails cleanly */
		if (n > 0)
			assert_int_equal(
			    grey_norm_recipient(in, len, "+-", out, (size_t)n),
			    -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sender_table),
	    cmocka_unit_test(test_sender_srs_stable),
	    cmocka_unit_test(test_sender_delimiters),
	    cmocka_unit_test(test_sender_bounds),
	    cmocka_unit_test(test_sender_nul),
	    cmocka_unit_test(test_recipient_table),
	    cmocka_unit_test(test_recipient_delimiters),
	    cmocka_unit_test(test_random_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
