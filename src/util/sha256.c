/*
 * sha256 - SHA-256 and HMAC-SHA256; see sha256.h.
 *
 * A direct reading of FIPS 180-4 section 6.2 (the hash computation over
 * 512-bit blocks with the 64-word message schedule) and section 5.1.1
 * (padding: a 1 bit, zeros, the 64-bit big-endian message length in bits).
 * The round constants are those of section 4.2.2 and the initial value that
 * of section 5.3.3.
 */
#include "util/sha256.h"

#include <string.h>

/* FIPS 180-4 section 4.2.2: the first 32 bits of the fractional parts of
 * the cube roots of the first 64 primes. */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* FIPS 180-4 section 5.3.3: the first 32 bits of the fractional parts of
 * the square roots of the first 8 primes. */
static const uint32_t H0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static uint32_t rotr(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

/* Section 4.1.2, functions (4.2) to (4.7). */
static uint32_t ch(uint32_t x, uint32_t y, uint32_t z)
{
	return (x & y) ^ (~x & z);
}

static uint32_t maj(uint32_t x, uint32_t y, uint32_t z)
{
	return (x & y) ^ (x & z) ^ (y & z);
}

static uint32_t bsig0(uint32_t x)
{
	return rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22);
}

static uint32_t bsig1(uint32_t x)
{
	return rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25);
}

static uint32_t ssig0(uint32_t x)
{
	return rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3);
}

static uint32_t ssig1(uint32_t x)
{
	return rotr(x, 17) ^ rotr(x, 19) ^ (x >> 10);
}

/* Section 6.2.2: one 512-bit block into the hash value h. */
static void compress(uint32_t h[8], const unsigned char *p)
{
	uint32_t w[64];
	uint32_t a, b, c, d, e, f, g, hh;

	for (size_t t = 0; t < 16; t++)
		w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
		       (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
	for (int t = 16; t < 64; t++)
		w[t] =
		    ssig1(w[t - 2]) + w[t - 7] + ssig0(w[t - 15]) + w[t - 16];
	a = h[0];
	b = h[1];
	c = h[2];
	d = h[3];
	e = h[4];
	f = h[5];
	g = h[6];
	hh = h[7];
	for (int t = 0; t < 64; t++) {
		uint32_t t1 = hh + bsig1(e) + ch(e, f, g) + K[t] + w[t];
		uint32_t t2 = bsig0(a) + maj(a, b, c);
		hh = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
	h[5] += f;
	h[6] += g;
	h[7] += hh;
}

void sha256_init(struct sha256_ctx *c)
{
	memcpy(c->h, H0, sizeof(c->h));
	c->total = 0;
	c->buflen = 0;
}

void sha256_update(struct sha256_ctx *c, const void *data, size_t len)
{
	const unsigned char *p = data;

	c->total += len;
	if (c->buflen > 0) {
		size_t take = SHA256_BLOCK_SIZE - c->buflen;
		if (take > len)
			take = len;
		memcpy(c->buf + c->buflen, p, take);
		c->buflen += take;
		p += take;
		len -= take;
		if (c->buflen < SHA256_BLOCK_SIZE)
			return;
		compress(c->h, c->buf);
		c->buflen = 0;
	}
	while (len >= SHA256_BLOCK_SIZE) {
		compress(c->h, p);
		p += SHA256_BLOCK_SIZE;
		len -= SHA256_BLOCK_SIZE;
	}
	memcpy(c->buf, p, len);
	c->buflen = len;
}

void sha256_final(struct sha256_ctx *c, unsigned char out[SHA256_DIGEST_SIZE])
{
	uint64_t bits = c->total * 8;

	/* Section 5.1.1: the 1 bit, then zeros up to 56 bytes mod 64. */
	c->buf[c->buflen++] = 0x80;
	if (c->buflen > SHA256_BLOCK_SIZE - 8) {
		memset(c->buf + c->buflen, 0, SHA256_BLOCK_SIZE - c->buflen);
		compress(c->h, c->buf);
		c->buflen = 0;
	}
	memset(c->buf + c->buflen, 0, SHA256_BLOCK_SIZE - 8 - c->buflen);
	for (int i = 0; i < 8; i++)
		c->buf[SHA256_BLOCK_SIZE - 1 - i] =
		    (unsigned char)(bits >> (8 * i));
	compress(c->h, c->buf);
	for (size_t i = 0; i < 8; i++) {
		out[4 * i] = (unsigned char)(c->h[i] >> 24);
		out[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
		out[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
		out[4 * i + 3] = (unsigned char)c->h[i];
	}
}

void sha256(const void *data, size_t len, unsigned char out[SHA256_DIGEST_SIZE])
{
	struct sha256_ctx c;

	sha256_init(&c);
	sha256_update(&c, data, len);
	sha256_final(&c, out);
}

void hmac_sha256_key_init(struct hmac_sha256_key *k, const void *key,
			  size_t keylen)
{
	/* RFC 2104 section 2: a key longer than B is hashed first; the key
	 * is then padded with zeros to B bytes. */
	unsigned char kb[SHA256_BLOCK_SIZE] = {0};
	unsigned char pad[SHA256_BLOCK_SIZE];

	if (keylen > SHA256_BLOCK_SIZE)
		sha256(key, keylen, kb);
	else if (keylen > 0)
		memcpy(kb, key, keylen);
	for (int i = 0; i < SHA256_BLOCK_SIZE; i++)
		pad[i] = kb[i] ^ 0x36; /* ipad */
	sha256_init(&k->inner);
	sha256_update(&k->inner, pad, sizeof(pad));
	for (int i = 0; i < SHA256_BLOCK_SIZE; i++)
		pad[i] = kb[i] ^ 0x5c; /* opad */
	sha256_init(&k->outer);
	sha256_update(&k->outer, pad, sizeof(pad));
}

void hmac_sha256_with(const struct hmac_sha256_key *k, const void *msg,
		      size_t msglen, unsigned char out[SHA256_DIGEST_SIZE])
{
	struct sha256_ctx c = k->inner;
	unsigned char inner[SHA256_DIGEST_SIZE];

	sha256_update(&c, msg, msglen);
	sha256_final(&c, inner);
	c = k->outer;
	sha256_update(&c, inner, sizeof(inner));
	sha256_final(&c, out);
}

void hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
		 unsigned char out[SHA256_DIGEST_SIZE])
{
	struct hmac_sha256_key k;

	hmac_sha256_key_init(&k, key, keylen);
	hmac_sha256_with(&k, msg, msglen, out);
}
