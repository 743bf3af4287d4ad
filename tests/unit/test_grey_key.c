/*
 * test_grey_key - triplet and client keys, split, printable form and its
 * inverse (grey/key).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "grey/key.h"

static struct addr ip(const char *s)
{
	struct addr a;
	assert_int_equal(addr_parse(s, &a), 0);
	return a;
}

struct net_case {
	const char *ip;
	int v4, v6;
	const char *want;
};

static const struct net_case net_cases[] = {
    {"192.0.2.77", 24, 64, "192.0.2.0/24"},
    {"192.0.2.77", 32, 64, "192.0.2.77/32"},
    {"192.0.2.77", 16, 64, "192.0.0.0/16"},
    {"192.0.2.77", 0, 64, "0.0.0.0/0"},
    {"::ffff:192.0.2.77", 24, 64, "192.0.2.0/24"},
    {"2001:db8:1:2:3:4:5:6", 24, 64, "2001:db8:1:2::/64"},
    {"2001:db8:1:2:3:4:5:6", 24, 48, "2001:db8:1::/48"},
    {"2001:db8:1:2:3:4:5:6", 24, 128, "2001:db8:1:2:3:4:5:6/128"},
    {"192.0.2.77", 33, 64, NULL},
    {"2001:db8::1", 24, 129, NULL},
    {"192.0.2.77", -1, 64, NULL},
};

static void test_net(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(net_cases) / sizeof(*net_cases); i++) {
		const struct net_case *c = &net_cases[i];
		struct grey_key_conf conf = {c->v4, c->v6, NULL};
		struct addr a = ip(c->ip);
		char out[GREY_NET_MAX];
		ssize_t n = grey_key_net(&conf, &a, out, sizeof(out));
		if (c->want == NULL) {
			assert_int_equal(n, -1);
			continue;
		}
		assert_int_equal(n, (ssize_t)strlen(c->want));
		assert_string_equal(out, c->want);
	}
}

static void test_net_small_buffer(void **state)
{
	(void)state;
	struct grey_key_conf conf;
	grey_key_conf_init(&conf);
	struct addr a = ip("192.0.2.77");
	char out[13];
	assert_int_equal(grey_key_net(&conf, &a, out, 13), 12);
	assert_int_equal(grey_key_net(&conf, &a, out, 12), -1);
}

static void test_defaults(void **state)
{
	(void)state;
	struct grey_key_conf conf;
	grey_key_conf_init(&conf);
	assert_int_equal(conf.ipv4_prefix, 24);
	assert_int_equal(conf.ipv6_prefix, 64);
	assert_null(conf.delimiters);
}

static void test_triplet(void **state)
{
	(void)state;
	struct grey_key_conf conf;
	grey_key_conf_init(&conf);
	struct addr a = ip("192.0.2.77");
	unsigned char key[STORE_KEY_MAX];
	const char *s = "Bounce-123+x@Lists.Example.org";
	const char *r = "Bob+folder@Example.NET";
	ssize_t n = grey_key_triplet(&conf, &a, s, strlen(s), r, strlen(r), key,
				     sizeof(key));
	const char want[] = "192.0.2.0/24\0bounce-#@lists.example.org\0"
			    "bob@example.net";
	assert_int_equal(n, (ssize_t)sizeof(want) - 1);
	assert_memory_equal(key, want, sizeof(want) - 1);

	/* a neighbour in the /24 gets the same key */
	struct addr b = ip("192.0.2.1");
	unsigned char key2[STORE_KEY_MAX];
	assert_int_equal(grey_key_triplet(&conf, &b, s, strlen(s), r, strlen(r),
					  key2, sizeof(key2)),
			 n);
	assert_memory_equal(key, key2, (size_t)n);

	struct grey_key_parts p;
	assert_int_equal(grey_key_split(key, (size_t)n, &p), 0);
	assert_int_equal(p.netlen, 12);
	assert_memory_equal(p.net, "192.0.2.0/24", 12);
	assert_int_equal(p.senderlen, 26);
	assert_memory_equal(p.sender, "bounce-#@lists.example.org", 26);
	assert_int_equal(p.rcptlen, 15);
	assert_memory_equal(p.rcpt, "bob@example.net", 15);
	assert_false(grey_key_is_spf(&p));
}

static void test_triplet_null_sender(void **state)
{
	(void)state;
	struct grey_key_conf conf;
	grey_key_conf_init(&conf);
	struct addr a = ip("2001:db8::25");
	unsigned char key[STORE_KEY_MAX];
	ssize_t n = grey_key_triplet(&conf, &a, "", 0, "bob@example.net", 15,
				     key, sizeof(key));
	const char want[] = "2001:db8::/64\0\0bob@example.net";
	assert_int_equal(n, (ssize_t)sizeof(want) - 1);
	assert_memory_equal(key, want, sizeof(want) - 1);
	struct grey_key_parts p;
	assert_int_equal(grey_key_split(key, (size_t)n, &p), 0);
	assert_int_equal(p.senderlen, 0);

	char text[GREY_KEY_PRINT_MAX];
	assert_int_equal(grey_key_format(key, (size_t)n, text, sizeof(text)),
			 32);
	assert_string_equal(text, "2001:db8::/64 <> bob@example.net");
}

static void test_triplet_spf(void **state)
{
	(void)state;
	struct grey_key_conf conf;
	grey_key_conf_init(&conf);
	unsigned char key[STORE_KEY_MAX];
	ssize_t n = grey_key_triplet_spf(&conf, "Mail.Example.COM.",
					 "a@mail.example.com", 18,
					 "b@example.net", 13, key, sizeof(key));
	const char want[] =
	    "spf:mail.example.com\0a@mail.example.com\0b@example.net";
	assert_int_equal(n, (ssize_t)sizeof(want) - 1);
	assert_memory_equal(key, want, sizeof(want) - 1);
	struct grey_key_parts p;
	assert_int_equal(grey_key_split(key, (size_t)n, &p), 0);
	assert_true(grey_key_is_spf(&p));

	char net[GREY_NET_MAX];
	assert_int_equal(grey_key_spf_net("", net, sizeof(net)), -1);
	assert_int_equal(grey_key_spf_net(".", net, sizeof(net)), -1);
	assert_int_equal(grey_key_spf_net("a b", net, sizeof(net)), -1);
	assert_int_equal(grey_key_spf_net("a/b", net, sizeof(net)), -1);
	assert_int_equal(grey_key_spf_net("a\x01", net, sizeof(net)), -1);
	assert_int_equal(grey_key_spf_net("x.org", net, 9), -1);
	assert_int_equal(grey_key_spf_net("x.org", net, 10), 9);
	assert_string_equal(net, "spf:x.org");
	char longd[300];
	memset(longd, 'a', sizeof(longd) - 1);
	longd[299] = '\0';
	assert_int_equal(grey_key_spf_net(longd, net, sizeof(net)), -1);
	longd[253] = '\0';
	assert_int_equal(grey_key_spf_net(longd, net, sizeof(net)), 257);
}

static void test_triplet_limits(void **state)
{
	(void)state;
	struct grey_key_conf conf;
	grey_key_conf_init(&conf);
	struct addr a = ip("192.0.2.77");
	unsigned char key[STORE_KEY_MAX + 10];
	char big[STORE_KEY_MAX];
	memset(big, 'a', sizeof(big));
	/* A long sender is folded, never refused: 12 + 1 + 250 + 1 + 3. */
	assert_int_equal(
	    grey_key_triplet(&conf, &a, big, 760, "b@x", 3, key, sizeof(key)),
	    12 + 1 + GREY_KEY_PART_MAX + 1 + 3);
	struct grey_key_parts p;
	assert_int_equal(grey_key_split(key, 267, &p), 0);
	assert_int_equal(p.senderlen, GREY_KEY_PART_MAX);
	assert_int_equal(p.sender[GREY_KEY_PART_MAX - 1 - GREY_KEY_FOLD_HEX],
			 '#');
	/* folding keeps long addresses apart, and is stable */
	unsigned char key2[STORE_KEY_MAX];
	big[759] = 'b';
	assert_int_equal(
	    grey_key_triplet(&conf, &a, big, 760, "b@x", 3, key2, sizeof(key2)),
	    267);
	assert_memory_not_equal(key, key2, 267);
	big[759] = 'a';
	assert_int_equal(
	    grey_key_triplet(&conf, &a, big, 760, "b@x", 3, key2, sizeof(key2)),
	    267);
	assert_memory_equal(key, key2, 267);
	/* both parts long: still fits STORE_KEY_MAX */
	assert_int_equal(
	    grey_key_triplet(&conf, &a, big, 700, big, 700, key, sizeof(key)),
	    12 + 1 + GREY_KEY_PART_MAX + 1 + GREY_KEY_PART_MAX);
	/* a part exactly at the bound is kept as it is */
	assert_int_equal(grey_key_triplet(&conf, &a, big, GREY_KEY_PART_MAX,
					  "b@x", 3, key, sizeof(key)),
			 267);
	assert_int_equal(grey_key_split(key, 267, &p), 0);
	assert_null(memchr(p.sender, '#', p.senderlen));
	/* NUL inside an address */
	assert_int_equal(
	    grey_key_triplet(&conf, &a, "a\0b", 3, "b@x", 3, key, sizeof(key)),
	    -1);
	/* tiny buffer */
	assert_int_equal(
	    grey_key_triplet(&conf, &a, "a@x", 3, "b@x", 3, key, 14), -1);
	assert_int_equal(
	    grey_key_triplet(&conf, &a, "a@x", 3, "b@x", 3, key, 21), 20);
	assert_int_equal(
	    grey_key_triplet(&conf, &a, "a@x", 3, "b@x", 3, key, 20), -1);
}

struct split_case {
	const char *key;
	size_t len;
	int rc;
};

static const struct split_case split_cases[] = {
    {"n\0s\0r", 5, 0},	  {"n\0\0", 3, 0}, /* empty sender and recipient */
    {"\0s\0r", 4, -1},			   /* empty net */
    {"n\0s", 3, -1},			   /* one NUL */
    {"nsr", 3, -1},			   /* none */
    {"n\0s\0r\0", 6, -1},		   /* three */
    {"", 0, -1},
};

static void test_split(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(split_cases) / sizeof(*split_cases);
	     i++) {
		struct grey_key_parts p;
		assert_int_equal(
		    grey_key_split(split_cases[i].key, split_cases[i].len, &p),
		    split_cases[i].rc);
	}
}

static void test_join(void **state)
{
	(void)state;
	unsigned char key[32];
	assert_int_equal(grey_key_join("n/1", "s", "r", key, sizeof(key)), 7);
	assert_memory_equal(key, "n/1\0s\0r", 7);
	assert_int_equal(grey_key_join("", "s", "r", key, sizeof(key)), -1);
	assert_int_equal(grey_key_join("n/1", "s", "r", key, 6), -1);
	assert_int_equal(grey_key_join("n/1", "s", "r", key, 7), 7);
}

struct print_case {
	const char *key;
	size_t len;
	const char *text;
};

static const struct print_case print_cases[] = {
    {"192.0.2.0/24\0a@b.org\0c@d.net", 28, "192.0.2.0/24 a@b.org c@d.net"},
    {"192.0.2.0/24\0\0c@d.net", 21, "192.0.2.0/24 <> c@d.net"},
    {"192.0.2.0/24\0<>\0c@d.net", 23, "192.0.2.0/24 \\x3c> c@d.net"},
    {"n\0a b\0c\\d", 9, "n a\\x20b c\\x5cd"},
    {"n\0\xc3\xa9@x\0\x7f", 8, "n \\xc3\\xa9@x \\x7f"},
    {"n\0a\tb\0", 6, "n a\\x09b <>"},
    {"spf:x.org\0<\0>", 13, "spf:x.org < >"},
};

static void test_print_roundtrip(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(print_cases) / sizeof(*print_cases);
	     i++) {
		const struct print_case *c = &print_cases[i];
		char text[GREY_KEY_PRINT_MAX];
		ssize_t n = grey_key_format(c->key, c->len, text, sizeof(text));
		if (n < 0 || strcmp(text, c->text) != 0)
			fail_msg("case %zu: got %s want %s", i,
				 n < 0 ? "(-1)" : text, c->text);
		assert_int_equal(n, (ssize_t)strlen(c->text));
		unsigned char back[STORE_KEY_MAX];
		ssize_t m = grey_key_parse(text, back, sizeof(back));
		assert_int_equal(m, (ssize_t)c->len);
		assert_memory_equal(back, c->key, c->len);
	}
}

static void test_print_bounds(void **state)
{
	(void)state;
	char text[8];
	/* "n a b" needs 6 bytes */
	assert_int_equal(grey_key_format("n\0a\0b", 5, text, 6), 5);
	assert_string_equal(text, "n a b");
	assert_int_equal(grey_key_format("n\0a\0b", 5, text, 5), -1);
	assert_int_equal(grey_key_format("n\0a\0b", 5, text, 0), -1);
	assert_int_equal(grey_key_format("n\0\0", 3, text, 8), 7);
	assert_string_equal(text, "n <> <>");
	assert_int_equal(grey_key_format("n\0\0", 3, text, 7), -1);
	assert_int_equal(grey_key_format("n\0a", 3, text, 8), -1);

	/* the worst case fits GREY_KEY_PRINT_MAX */
	unsigned char key[STORE_KEY_MAX];
	memset(key, 0xff, sizeof(key));
	key[100] = '\0';
	key[200] = '\0';
	char big[GREY_KEY_PRINT_MAX];
	assert_int_equal(grey_key_format(key, sizeof(key), big, sizeof(big)),
			 (STORE_KEY_MAX - 2) * 4 + 2);
	unsigned char back[STORE_KEY_MAX];
	assert_int_equal(grey_key_parse(big, back, sizeof(back)),
			 STORE_KEY_MAX);
	assert_memory_equal(back, key, sizeof(key));
}

static const char *const bad_texts[] = {
    "",
    "n",
    "n a",
    "n a b c",
    " a b",
    "<> a b",
    "n  b",
    "n a b ",
    "n a\\x0 b",
    "n a\\x b",
    "n a\\y41 b",
    "n a\\xzz b",
    "n a\\x00b b",
    "n a\\",
    "n a\tb c",
    "n \xc3\xa9 b",
};

static void test_parse_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_texts) / sizeof(*bad_texts); i++) {
		unsigned char key[STORE_KEY_MAX];
		if (grey_key_parse(bad_texts[i], key, sizeof(key)) != -1)
			fail_msg("case %zu accepted: %s", i, bad_texts[i]);
	}
	unsigned char key[5];
	assert_int_equal(grey_key_parse("n a b", key, 4), -1);
	assert_int_equal(grey_key_parse("n a b", key, 5), 5);
	assert_int_equal(grey_key_parse("A\\x41 <> <>", key, 4), 4);
	assert_memory_equal(key, "AA\0\0", 4);
}

static uint32_t rng_state = 777;
static uint32_t rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

/* Random binary parts (no NUL) survive format + parse unchanged. */
static void test_random_roundtrip(void **state)
{
	(void)state;
	for (int iter = 0; iter < 5000; iter++) {
		char parts[3][200];
		for (int p = 0; p < 3; p++) {
			size_t len = rng() % 60 + (p == 0);
			for (size_t i = 0; i < len; i++) {
				uint32_t r = rng() % 8;
				parts[p][i] = r == 0   ? '\\'
					      : r == 1 ? ' '
					      : r == 2 ? '<'
					      : r == 3
						  ? '>'
						  : (char)(rng() % 255 + 1);
			}
			parts[p][len] = '\0';
		}
		unsigned char key[STORE_KEY_MAX], back[STORE_KEY_MAX];
		ssize_t n = grey_key_join(parts[0], parts[1], parts[2], key,
					  sizeof(key));
		assert_true(n > 0);
		char text[GREY_KEY_PRINT_MAX];
		assert_true(
		    grey_key_format(key, (size_t)n, text, sizeof(text)) > 0);
		assert_int_equal(grey_key_parse(text, back, sizeof(back)), n);
		assert_memory_equal(key, back, (size_t)n);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_net),
	    cmocka_unit_test(test_net_small_buffer),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_triplet),
	    cmocka_unit_test(test_triplet_null_sender),
	    cmocka_unit_test(test_triplet_spf),
	    cmocka_unit_test(test_triplet_limits),
	    cmocka_unit_test(test_split),
	    cmocka_unit_test(test_join),
	    cmocka_unit_test(test_print_roundtrip),
	    cmocka_unit_test(test_print_bounds),
	    cmocka_unit_test(test_parse_bad),
	    cmocka_unit_test(test_random_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
