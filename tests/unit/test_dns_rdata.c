/*
 * test_dns_rdata - decoding of rdata from the network (dns_rdata_parse) and
 * the name check of dns_resolve (dns_name_valid), with malformed input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "dns/resolver.h"

/* Big enough for any rdata used here (DNS_RDATA_BUFSIZE of 300 bytes). */
#define BUF_MAX 1300

struct rdata_case {
	const char *what;
	enum dns_type type;
	const unsigned char *rdata;
	size_t len;
	int rc;		  /* expected return */
	const char *name; /* expected rr.name, if any */
	const char *text; /* expected rr.text, if any */
	size_t text_len;  /* with text */
	uint16_t pref;	  /* MX */
};

#define R(...) ((const unsigned char[]){__VA_ARGS__})
#define RL(...) R(__VA_ARGS__), sizeof((const unsigned char[]){__VA_ARGS__})

static const struct rdata_case cases[] = {
    {"a record", DNS_T_A, RL(192, 0, 2, 1), 0, NULL, NULL, 0, 0},
    {"a too short", DNS_T_A, RL(192, 0, 2), -1, NULL, NULL, 0, 0},
    {"a too long", DNS_T_A, RL(192, 0, 2, 1, 0), -1, NULL, NULL, 0, 0},
    {"a empty", DNS_T_A, NULL, 0, -1, NULL, NULL, 0, 0},
    {"aaaa record", DNS_T_AAAA,
     RL(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), 0, NULL,
     NULL, 0, 0},
    {"aaaa 15 bytes", DNS_T_AAAA,
     RL(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), -1, NULL,
     NULL, 0, 0},
    {"mx", DNS_T_MX, RL(0, 10, 2, 'M', 'x', 4, 't', 'E', 's', 'T', 0), 0,
     "mx.test", NULL, 0, 10},
    {"mx pref 65535", DNS_T_MX, RL(0xff, 0xff, 1, 'a', 0), 0, "a", NULL, 0,
     65535},
    {"null mx is the root", DNS_T_MX, RL(0, 0, 0), 0, ".", NULL, 0, 0},
    {"mx without name", DNS_T_MX, RL(0, 10), -1, NULL, NULL, 0, 0},
    {"mx name not terminated", DNS_T_MX, RL(0, 10, 2, 'm', 'x'), -1, NULL, NULL,
     0, 0},
    {"mx label past the end", DNS_T_MX, RL(0, 10, 9, 'm', 'x', 0), -1, NULL,
     NULL, 0, 0},
    {"mx trailing bytes", DNS_T_MX, RL(0, 10, 1, 'm', 0, 7), -1, NULL, NULL, 0,
     0},
    {"mx compression pointer", DNS_T_MX, RL(0, 10, 0xc0, 12), -1, NULL, NULL, 0,
     0},
    {"ptr", DNS_T_PTR, RL(4, 'h', 'o', 's', 't', 4, 't', 'e', 's', 't', 0), 0,
     "host.test", NULL, 0, 0},
    {"ptr dot and backslash escaped", DNS_T_PTR,
     RL(3, 'a', '.', 'b', 2, '\\', 'c', 0), 0, "a\\.b.\\\\c", NULL, 0, 0},
    {"ptr space and bytes as \\DDD", DNS_T_PTR, RL(3, ' ', 0x00, 0xff, 0), 0,
     "\\032\\000\\255", NULL, 0, 0},
    {"ptr reserved label type", DNS_T_PTR, RL(0x41, 'a', 0), -1, NULL, NULL, 0,
     0},
    {"ptr empty", DNS_T_PTR, NULL, 0, -1, NULL, NULL, 0, 0},
    {"txt one string", DNS_T_TXT, RL(3, 'a', 'b', 'c'), 0, NULL, "abc", 3, 0},
    {"txt strings joined", DNS_T_TXT, RL(2, 'a', 'b', 0, 1, 'c'), 0, NULL,
     "abc", 3, 0},
    {"txt keeps NUL bytes", DNS_T_TXT, RL(3, 'a', 0, 'b'), 0, NULL, "a\0b", 3,
     0},
    {"txt no strings is empty", DNS_T_TXT, NULL, 0, 0, NULL, "", 0, 0},
    {"txt string past the end", DNS_T_TXT, RL(4, 'a', 'b', 'c'), -1, NULL, NULL,
     0, 0},
    {"txt second string past the end", DNS_T_TXT, RL(1, 'a', 5, 'b'), -1, NULL,
     NULL, 0, 0},
    {"unknown type", (enum dns_type)99, RL(1, 'a'), -1, NULL, NULL, 0, 0},
};

static void test_rdata_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct rdata_case *c = &cases[i];
		char buf[BUF_MAX];
		struct dns_rr rr;
		int rc;

		memset(buf, 'Z', sizeof(buf));
		rc = dns_rdata_parse(c->type, c->rdata, c->len, &rr, buf,
				     DNS_RDATA_BUFSIZE(c->len));
		if (rc != c->rc)
			fail_msg("%s: returned %d, want %d", c->what, rc,
				 c->rc);
		if (rc != 0)
			continue;
		if (c->name)
			assert_string_equal(rr.name, c->name);
		if (c->text) {
			assert_non_null(rr.text);
			assert_int_equal(rr.text_len, c->text_len);
			assert_memory_equal(rr.text, c->text, c->text_len);
			assert_int_equal(rr.text[rr.text_len], '\0');
		}
		if (c->type == DNS_T_MX)
			assert_int_equal(rr.pref, c->pref);
	}
}

static void test_addresses_decoded(void **state)
{
	char buf[BUF_MAX];
	struct dns_rr rr;
	const unsigned char a[] = {192, 0, 2, 1};

	(void)state;
	assert_int_equal(dns_rdata_parse(DNS_T_A, a, 4, &rr, buf, sizeof(buf)),
			 0);
	assert_int_equal(rr.addr.family, AF_INET);
	assert_memory_equal(rr.addr.b, a, 4);
}

static void test_small_buffer_refused(void **state)
{
	char buf[8];
	struct dns_rr rr;
	const unsigned char ptr[] = {4, 'h', 'o', 's', 't', 0};

	(void)state;
	assert_int_equal(
	    dns_rdata_parse(DNS_T_PTR, ptr, sizeof(ptr), &rr, buf, sizeof(buf)),
	    -1);
}

/* Worst case for the buffer: every octet of a 255-octet name escaped. */
static void test_longest_name_fits_bufsize(void **state)
{
	unsigned char wire[255];
	char buf[DNS_RDATA_BUFSIZE(255)];
	struct dns_rr rr;
	size_t off = 0;

	(void)state;
	/* Labels of 63, 63, 63 and 61 octets: 3 * 64 + 62 + 1 = 255. */
	for (int l = 0; l < 4; l++) {
		size_t n = l < 3 ? 63 : 61;

		wire[off++] = (unsigned char)n;
		memset(wire + off, 0x01, n);
		off += n;
	}
	wire[off++] = 0;
	assert_int_equal(off, 255);
	assert_int_equal(
	    dns_rdata_parse(DNS_T_PTR, wire, off, &rr, buf, sizeof(buf)), 0);
	assert_int_equal(strlen(rr.name), 250 * 4 + 3);

	/* Four labels of 63 octets: 257 octets on the wire, too long. */
	{
		unsigned char w2[257];
		char b2[DNS_RDATA_BUFSIZE(257)];

		off = 0;
		for (int l = 0; l < 4; l++) {
			w2[off++] = 63;
			memset(w2 + off, 'a', 63);
			off += 63;
		}
		w2[off++] = 0;
		assert_int_equal(off, 257);
		assert_int_equal(
		    dns_rdata_parse(DNS_T_PTR, w2, off, &rr, b2, sizeof(b2)),
		    -1);
	}
}

/* Every prefix of a valid MX rdata is malformed, never a crash. */
static void test_truncations_rejected(void **state)
{
	const unsigned char mx[] = {0,	 10,  2,   'm', 'x', 4,
				    't', 'e', 's', 't', 0};
	char buf[BUF_MAX];
	struct dns_rr rr;

	(void)state;
	for (size_t n = 0; n < sizeof(mx); n++)
		assert_int_equal(
		    dns_rdata_parse(DNS_T_MX, mx, n, &rr, buf, sizeof(buf)),
		    -1);
	assert_int_equal(
	    dns_rdata_parse(DNS_T_MX, mx, sizeof(mx), &rr, buf, sizeof(buf)),
	    0);
}

static void test_name_validity(void **state)
{
	char label63[70], label64[70], name253[300], name254[300];

	(void)state;
	memset(label63, 'a', 63);
	label63[63] = '\0';
	memset(label64, 'a', 64);
	label64[64] = '\0';
	/* 4 labels: 63.63.63.61 = 253 characters = 255 wire octets. */
	snprintf(name253, sizeof(name253), "%s.%s.%s.%.61s", label63, label63,
		 label63, label63);
	snprintf(name254, sizeof(name254), "%s.%s.%s.%.62s", label63, label63,
		 label63, label63);

	assert_true(dns_name_valid("example.com"));
	assert_true(dns_name_valid("example.com."));
	assert_true(dns_name_valid("."));
	assert_true(dns_name_valid("_spf.example.com"));
	assert_true(
	    dns_name_valid("macro%percent  space%20url-space.example.com"));
	assert_true(dns_name_valid(label63));
	assert_true(dns_name_valid(name253));
	assert_true(dns_name_valid("a\\.b.test"));
	assert_true(dns_name_valid("\\255\\000x.test"));

	assert_false(dns_name_valid(NULL));
	assert_false(dns_name_valid(""));
	assert_false(dns_name_valid(".."));
	assert_false(dns_name_valid("a..b"));
	assert_false(dns_name_valid(".a"));
	assert_false(dns_name_valid("a.b.."));
	assert_false(dns_name_valid(label64));
	assert_false(dns_name_valid(name254));
	assert_false(dns_name_valid("a\\"));
	assert_false(dns_name_valid("a\\25"));
	assert_false(dns_name_valid("a\\256.test"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rdata_table),
	    cmocka_unit_test(test_addresses_decoded),
	    cmocka_unit_test(test_small_buffer_refused),
	    cmocka_unit_test(test_longest_name_fits_bufsize),
	    cmocka_unit_test(test_truncations_rejected),
	    cmocka_unit_test(test_name_validity),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
