/*
 * sha256 - SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), for hashing
 * store keys so that a shared Redis holds no mail addresses.
 *
 * Written here rather than linked from OpenSSL: the project does not link
 * libcrypto, the need is one hash over short keys, and the FIPS 180-4 test
 * vectors (tests/unit/test_sha256.c) pin the implementation down.
 * Pure functions over caller buffers; no allocation, nothing fails.
 */
#ifndef GREYSPF_UTIL_SHA256_H
#define GREYSPF_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* Digest and block sizes in bytes (FIPS 180-4 section 1, figure 1). */
#define SHA256_DIGEST_SIZE 32
#define SHA256_BLOCK_SIZE 64

struct sha256_ctx {
	uint32_t h[8];
	uint64_t total; /* bytes hashed so far */
	unsigned char buf[SHA256_BLOCK_SIZE];
	size_t buflen;
};

void sha256_init(struct sha256_ctx *c);
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
/* Writes the digest; the context must be initialised again before reuse. */
void sha256_final(struct sha256_ctx *c, unsigned char out[SHA256_DIGEST_SIZE]);

/* One-shot SHA-256 of data. */
void sha256(const void *data, size_t len,
	    unsigned char out[SHA256_DIGEST_SIZE]);

/* HMAC-SHA256 (RFC 2104 with H = SHA-256, B = 64, L = 32). */
void hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
		 unsigned char out[SHA256_DIGEST_SIZE]);

/* A key prepared once for many MACs: the states after the key XOR ipad
 * and XOR opad blocks (the precomputation RFC 2104 section 4 suggests),
 * which saves two of the compressions of each MAC. */
struct hmac_sha256_key {
	struct sha256_ctx inner, outer;
};

void hmac_sha256_key_init(struct hmac_sha256_key *k, const void *key,
			  size_t keylen);
/* The same result as hmac_sha256() with the key given to init. */
void hmac_sha256_with(const struct hmac_sha256_key *k, const void *msg,
		      size_t msglen, unsigned char out[SHA256_DIGEST_SIZE]);

#endif
