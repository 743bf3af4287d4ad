/*
 * test_sha256 - SHA-256 against the FIPS 180-2 appendix B examples and the
 * NIST "long message" million-'a' vector; HMAC-SHA256 against RFC 4231
 * test cases 1, 2, 3, 4, 6 and 7 (case 5 truncates the output).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/sha256.h"

static void hex(const unsigned char *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void assert_digest(const unsigned char d[SHA256_DIGEST_SIZE],
			  const char *want)
{
	char got[2 * SHA256_DIGEST_SIZE + 1];
	hex(d, SHA256_DIGEST_SIZE, got);
	assert_string_equal(got, want);
}

static void sha256_fips_examples(void **state)
{
	unsigned char d[SHA256_DIGEST_SIZE];
	(void)state;
	sha256("abc", 3, d);
	assert_digest(d, "ba7816bf8f01cfea414140de5dae2223"
			 "b00361a396177a9cb410ff61f20015ad");
	sha256("", 0, d);
	assert_digest(d, "e3b0c44298fc1c149afbf4c8996fb924"
			 "27ae41e4649b934ca495991b7852b855");
	const char *m =
	    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	sha256(m, strlen(m), d);
	assert_digest(d, "248d6a61d20638b8e5c026930c3e6039"
			 "a33ce45964ff2167f6ecedd419db06c1");
}

/* One million 'a', fed in odd-sized pieces to exercise buffering. */
static void sha256_million_a_in_pieces(void **state)
{
	unsigned char d[SHA256_DIGEST_SIZE];
	char chunk[997];
	struct sha256_ctx c;
	size_t left = 1000000;
	(void)state;
	memset(chunk, 'a', sizeof(chunk));
	sha256_init(&c);
	while (left > 0) {
		size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
		sha256_update(&c, chunk, n);
		left -= n;
	}
	sha256_final(&c, d);
	assert_digest(d, "cdc76e5c9914fb9281a1c7e284d73e67"
			 "f1809a48a497200e046d39ccc7112cd0");
}

/* Lengths around the padding boundary (55, 56, 63, 64 bytes) agree whether
 * hashed at once or a byte at a time. */
static void sha256_padding_boundaries(void **state)
{
	unsigned char buf[130], a[SHA256_DIGEST_SIZE], b[SHA256_DIGEST_SIZE];
	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 7 + 1);
	for (size_t n = 50; n <= sizeof(buf); n++) {
		struct sha256_ctx c;
		sha256(buf, n, a);
		sha256_init(&c);
		for (size_t i = 0; i < n; i++)
			sha256_update(&c, buf + i, 1);
		sha256_final(&c, b);
		assert_memory_equal(a, b, sizeof(a));
	}
}

static void hmac_rfc4231(void **state)
{
	unsigned char d[SHA256_DIGEST_SIZE];
	unsigned char key[131], data[50];
	(void)state;

	/* Test case 1 */
	memset(key, 0x0b, 20);
	hmac_sha256(key, 20, "Hi There", 8, d);
	assert_digest(d, "b0344c61d8db38535ca8afceaf0bf12b"
			 "881dc200c9833da726e9376c2e32cff7");
	/* Test case 2 */
	hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, d);
	assert_digest(d, "5bdcc146bf60754e6a042426089575c7"
			 "5a003f089d2739839dec58b964ec3843");
	/* Test case 3 */
	memset(key, 0xaa, 20);
	memset(data, 0xdd, 50);
	hmac_sha256(key, 20, data, 50, d);
	assert_digest(d, "773ea91e36800e46854db8ebd09181a7"
			 "2959098b3ef8c122d9635514ced565fe");
	/* Test case 4 */
	for (int i = 0; i < 25; i++)
		key[i] = (unsigned char)(i + 1);
	memset(data, 0xcd, 50);
	hmac_sha256(key, 25, data, 50, d);
	assert_digest(d, "82558a389a443c0ea4cc819899f2083a"
			 "85f0faa3e578f8077a2e3ff46729665b");
	/* Test case 6: a key longer than the block is hashed first. */
	memset(key, 0xaa, 131);
	const char *m6 =
	    "Test Using Larger Than Block-Size Key - Hash Key First";
	hmac_sha256(key, 131, m6, strlen(m6), d);
	assert_digest(d, "60e431591ee0b67f0d8a26aacbf5b77f"
			 "8e0bc6213728c5140546040f0ee37f54");
	/* Test case 7 */
	const char *m7 =
	    "This is a test using a larger than block-size key and a "
	    "larger than block-size data. The key needs to be hashed "
	    "before being used by the HMAC algorithm.";
	hmac_sha256(key, 131, m7, strlen(m7), d);
	assert_digest(d, "9b09ffa71b942fcb27635fbcd5b0e944"
			 "bfdc63644f0713938a7f51535c3a35e2");
}

/* The prepared key gives the one-shot result, for short, block-sized and
 * long keys, and is reusable. */
static void hmac_prepared_key_matches(void **state)
{
	unsigned char key[150], msg[200], a[SHA256_DIGEST_SIZE],
		b[SHA256_DIGEST_SIZE];
	static const size_t keylens[] = {0, 1, 20, 63, 64, 65, 150};
	(void)state;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(i * 13 + 5);
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (unsigned char)(i * 31 + 7);
	for (size_t k = 0; k < sizeof(keylens) / sizeof(keylens[0]); k++) {
		struct hmac_sha256_key hk;
		hmac_sha256_key_init(&hk, key, keylens[k]);
		for (size_t n = 0; n <= sizeof(msg); n += 37) {
			hmac_sha256(key, keylens[k], msg, n, a);
			hmac_sha256_with(&hk, msg, n, b);
			assert_memory_equal(a, b, sizeof(a));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sha256_fips_examples),
	    cmocka_unit_test(sha256_million_a_in_pieces),
	    cmocka_unit_test(sha256_padding_boundaries),
	    cmocka_unit_test(hmac_rfc4231),
	    cmocka_unit_test(hmac_prepared_key_matches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
