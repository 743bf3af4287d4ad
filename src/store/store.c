/*
 * store - backend-independent parts of the greylist store (see store.h).
 *
 * Table names (also the LMDB database names and the Redis key prefixes, so
 * they are part of the on-disk format and must not change) and the portable
 * record encoding shared by every backend. Pure functions; nothing logs.
 */
#include "store/store.h"

#include <string.h>

static const char *const table_names[STORE_NTABLES] = {
    [STORE_TRIPLETS] = "triplets",
    [STORE_CLIENTS] = "clients",
    [STORE_WHITELIST] = "whitelist",
};

const char *store_table_name(enum store_table t)
{
	if ((unsigned)t >= STORE_NTABLES)
		return "unknown";
	return table_names[t];
}

/* Byte offsets of the fields in the version-1 layout. */
enum {
	REC_OFF_VERSION = 0,
	REC_OFF_FIRST = 1,
	REC_OFF_LAST = 9,
	REC_OFF_EXPIRES = 17,
	REC_OFF_COUNT = 25,
	REC_OFF_PASSED = 29,
};

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint32_t get_le32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

/* int64 <-> uint64 through memcpy: two's complement, no implementation-
 * defined conversion of out-of-range values. */
static uint64_t i64_bits(int64_t v)
{
	uint64_t u;

	memcpy(&u, &v, sizeof(u));
	return u;
}

static int64_t bits_i64(uint64_t u)
{
	int64_t v;

	memcpy(&v, &u, sizeof(v));
	return v;
}

void store_rec_encode(const struct store_rec *rec,
		      unsigned char out[STORE_REC_SIZE])
{
	out[REC_OFF_VERSION] = STORE_REC_VERSION;
	put_le64(out + REC_OFF_FIRST, i64_bits(rec->first_seen));
	put_le64(out + REC_OFF_LAST, i64_bits(rec->last_seen));
	put_le64(out + REC_OFF_EXPIRES, i64_bits(rec->expires));
	put_le32(out + REC_OFF_COUNT, rec->count);
	put_le32(out + REC_OFF_PASSED, rec->passed);
}

bool store_rec_decode(const unsigned char *buf, size_t len,
		      struct store_rec *out)
{
	if (buf == NULL || len != STORE_REC_SIZE ||
	    buf[REC_OFF_VERSION] != STORE_REC_VERSION)
		return false;
	out->first_seen = bits_i64(get_le64(buf + REC_OFF_FIRST));
	out->last_seen = bits_i64(get_le64(buf + REC_OFF_LAST));
	out->expires = bits_i64(get_le64(buf + REC_OFF_EXPIRES));
	out->count = get_le32(buf + REC_OFF_COUNT);
	out->passed = get_le32(buf + REC_OFF_PASSED);
	return true;
}
