/*
 * key - the store keys of greylisting.
 *
 * Triplet key (STORE_TRIPLETS): the binary string
 *     NET NUL SENDER NUL RECIPIENT            (no trailing NUL)
 * where NET is the client network in text, "192.0.2.0/24" or
 * "2001:db8::/64" (client address masked to ipv4_prefix / ipv6_prefix), or
 * "spf:example.com" when the caller keys a message by its SPF-validated
 * domain (providers retry from other addresses of a pool), and SENDER and
 * RECIPIENT are normalised (normalise.h). Neither part can hold a NUL, so
 * grey_key_split() recovers the three parts exactly.
 *
 * Client key (STORE_CLIENTS, the auto-whitelist): the NET text alone
 * (grey_key_net(), or grey_key_spf_net() for SPF-keyed greylisting).
 *
 * Printable form, for `greyspf db list|dump|load`: "NET SENDER RECIPIENT"
 * separated by single spaces; every byte outside 0x21..0x7e, and "\"
 * itself, is written "\xHH"; an empty part (the null sender) is "<>", and
 * a part that really is "<>" is written "\x3c>" so the two stay apart.
 * grey_key_parse() is its inverse.
 *
 * All functions are pure; lengths returned exclude any NUL; -1 means the
 * result does not fit or the input is malformed. Nothing allocates.
 */
#ifndef GREYSPF_GREY_KEY_H
#define GREYSPF_GREY_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "store/store.h"
#include "util/addr.h"

/* Default client networks: postgrey's --ipv4cidr=24 / --ipv6cidr=64 (a /64
 * is one IPv6 subnet, RFC 4291 section 2.5.1). */
#define GREY_IPV4_PREFIX_DEFAULT 24
#define GREY_IPV6_PREFIX_DEFAULT 64

/* Prefix of the NET part of a key keyed by an SPF-validated domain. */
#define GREY_KEY_SPF_PREFIX "spf:"

/* Longest NET text: "spf:" + a 253-octet domain (RFC 1035 section 2.3.4
 * gives 255 octets on the wire, 253 in text), with room for the NUL. */
#define GREY_NET_MAX (4 + 253 + 1)

/* Longest printable key: every byte escaped as \xHH. */
#define GREY_KEY_PRINT_MAX (4 * STORE_KEY_MAX + 8)

/* Longest sender or recipient in a key: a network ("spf:" + 253-octet
 * domain + NUL) and two parts of this size fit STORE_KEY_MAX. A longer
 * normalised address is folded to a prefix, "#" and GREY_KEY_FOLD_HEX hex
 * digits of its SHA-256, so it is still greylisted. RFC 5321 addresses
 * (at most 320 octets) that are longer than this are rare enough. */
#define GREY_KEY_PART_MAX 250
#define GREY_KEY_FOLD_HEX 32

struct grey_key_conf {
	int ipv4_prefix;	/* 0..32 */
	int ipv6_prefix;	/* 0..128 */
	const char *delimiters; /* extension delimiters; NULL = default "+" */
};

/* The defaults above. */
void grey_key_conf_init(struct grey_key_conf *c);

/* The client network text of ip ("192.0.2.0/24") into out (GREY_NET_MAX).
 * It is also the STORE_CLIENTS key. Returns its length or -1. */
ssize_t grey_key_net(const struct grey_key_conf *c, const struct addr *ip,
		     char *out, size_t outsize);

/* The NET text for an SPF-validated domain: "spf:" + lower-cased domain
 * (a trailing dot removed). -1 if empty, too long, or it holds a NUL, a
 * space or "/". */
ssize_t grey_key_spf_net(const char *domain, char *out, size_t outsize);

/* Normalises sender (slen bytes, "" for the null sender) and recipient and
 * joins them after the network of ip. key should hold STORE_KEY_MAX bytes;
 * the key is at most STORE_KEY_MAX - 1 bytes long (the normaliser needs
 * room for the recipient's NUL, which is not part of the key).
 * Returns the key length or -1 (does not fit, NUL in input). */
ssize_t grey_key_triplet(const struct grey_key_conf *c, const struct addr *ip,
			 const char *sender, size_t slen, const char *rcpt,
			 size_t rlen, void *key, size_t keysize);

/* As grey_key_triplet() with NET = grey_key_spf_net(domain). */
ssize_t grey_key_triplet_spf(const struct grey_key_conf *c, const char *domain,
			     const char *sender, size_t slen, const char *rcpt,
			     size_t rlen, void *key, size_t keysize);

/* Joins three already normalised NUL-terminated parts. -1 if net is empty
 * or the result does not fit. */
ssize_t grey_key_join(const char *net, const char *sender, const char *rcpt,
		      void *key, size_t keysize);

/* The parts of a key; pointers point into the key given to
 * grey_key_split() and are NOT NUL-terminated: use the lengths. */
struct grey_key_parts {
	const char *net;
	size_t netlen;
	const char *sender;
	size_t senderlen;
	const char *rcpt;
	size_t rcptlen;
};

/* Splits a triplet key. 0, or -1 unless it has exactly two NULs and a
 * non-empty NET. */
int grey_key_split(const void *key, size_t keylen, struct grey_key_parts *out);

/* True if the key's NET part is an SPF domain ("spf:..."). */
bool grey_key_is_spf(const struct grey_key_parts *p);

/* Printable form of a triplet key into out (GREY_KEY_PRINT_MAX is always
 * enough for a key of at most STORE_KEY_MAX bytes). Returns the length or
 * -1 (not a valid key, or it does not fit). */
ssize_t grey_key_format(const void *key, size_t keylen, char *out,
			size_t outsize);

/* Inverse of grey_key_format(): text (NUL-terminated) into a binary key.
 * Returns the key length or -1 (not three space-separated parts, bad
 * escape, empty NET, does not fit). */
ssize_t grey_key_parse(const char *text, void *key, size_t keysize);

#endif
