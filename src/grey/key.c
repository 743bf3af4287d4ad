/*
 * key - building, splitting, printing and parsing greylist store keys.
 *
 * Layout and printable form are described in key.h. Keys are built into
 * the caller's buffer; the normalised parts are written in place, so no
 * temporary copies or allocations are needed.
 */
#include "grey/key.h"
#include "util/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "grey/normalise.h"
#include "util/sha256.h"
#include "util/xalloc.h"

void grey_key_conf_init(struct grey_key_conf *c)
{
	c->ipv4_prefix = GREY_IPV4_PREFIX_DEFAULT;
	c->ipv6_prefix = GREY_IPV6_PREFIX_DEFAULT;
	c->delimiters = NULL;
}

ssize_t grey_key_net(const struct grey_key_conf *c, const struct addr *ip,
		     char *out, size_t outsize)
{
	struct cidr net;
	char buf[CIDR_STRLEN];

	net.net = *ip;
	net.prefix = ip->family == AF_INET6 ? c->ipv6_prefix : c->ipv4_prefix;
	if (net.prefix < 0 || net.prefix > addr_bits(ip))
		return -1;
	addr_mask(&net.net, net.prefix);
	cidr_format(&net, buf, sizeof(buf));
	size_t n = strlen(buf);
	if (n + 1 > outsize)
		return -1;
	memcpy(out, buf, n + 1);
	return (ssize_t)n;
}

ssize_t grey_key_spf_net(const char *domain, char *out, size_t outsize)
{
	size_t plen = strlen(GREY_KEY_SPF_PREFIX);
	size_t dlen = strlen(domain);

	if (dlen > 0 && domain[dlen - 1] == '.')
		dlen--;
	if (dlen == 0 || plen + dlen + 1 > outsize ||
	    plen + dlen + 1 > GREY_NET_MAX)
		return -1;
	memcpy(out, GREY_KEY_SPF_PREFIX, plen);
	for (size_t i = 0; i < dlen; i++) {
		unsigned char ch = (unsigned char)domain[i];
		/* A space would break the printable form, "/" the look of a
		 * network; neither occurs in a domain name. */
		if (ch <= ' ' || ch == '/' || ch == 0x7f)
			return -1;
		if (ch >= 'A' && ch <= 'Z')
			ch = (unsigned char)(ch - 'A' + 'a');
		out[plen + i] = (char)ch;
	}
	out[plen + dlen] = '\0';
	return (ssize_t)(plen + dlen);
}

/* Appends the normalised sender and recipient after NET + NUL. */
/* Normalises one address part into out (GREY_KEY_PART_MAX + 1 bytes).
 * A part longer than GREY_KEY_PART_MAX is folded to its first bytes, "#",
 * and 32 hex digits of the SHA-256 of the whole normalised part: distinct
 * long addresses stay distinct, and every sender, however long, is
 * greylisted like any other (a sender that could skip greylisting by being
 * long would be a hole). Returns the length or -1. */
static ssize_t key_part(const struct grey_key_conf *c, bool sender,
			const char *in, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	/* Normalisation never lengthens its input. */
	size_t cap = len + 1;
	char stackbuf[GREY_KEY_PART_MAX + 1];
	char *buf = cap <= sizeof(stackbuf) ? stackbuf : xmalloc(cap);
	ssize_t n = sender ? grey_norm_sender_d(in, len, c->delimiters, buf, cap)
			   : grey_norm_recipient(in, len, c->delimiters, buf,
						 cap);
	if (n >= 0 && (size_t)n <= GREY_KEY_PART_MAX) {
		memcpy(out, buf, (size_t)n + 1);
	} else if (n >= 0) {
		unsigned char d[SHA256_DIGEST_SIZE];
		size_t keep = GREY_KEY_PART_MAX - 1 - GREY_KEY_FOLD_HEX;
		sha256(buf, (size_t)n, d);
		memcpy(out, buf, keep);
		out[keep] = '#';
		for (size_t i = 0; i < GREY_KEY_FOLD_HEX / 2; i++) {
			out[keep + 1 + 2 * i] = hex[d[i] >> 4];
			out[keep + 2 + 2 * i] = hex[d[i] & 15];
		}
		n = GREY_KEY_PART_MAX;
		out[n] = '\0';
	}
	if (buf != stackbuf)
		free(buf);
	return n;
}

static ssize_t finish_triplet(const struct grey_key_conf *c, size_t netlen,
			      const char *sender, size_t slen, const char *rcpt,
			      size_t rlen, char *k, size_t keysize)
{
	char sp[GREY_KEY_PART_MAX + 1], rp[GREY_KEY_PART_MAX + 1];
	ssize_t s = key_part(c, true, sender, slen, sp);
	ssize_t r = key_part(c, false, rcpt, rlen, rp);
	if (keysize > STORE_KEY_MAX)
		keysize = STORE_KEY_MAX;
	if (s < 0 || r < 0)
		return -1;
	/* NET NUL SENDER NUL RCPT, and room for a final NUL. */
	size_t total = netlen + 1 + (size_t)s + 1 + (size_t)r;
	if (total >= keysize)
		return -1;
	memcpy(k + netlen + 1, sp, (size_t)s + 1);
	memcpy(k + netlen + 1 + (size_t)s + 1, rp, (size_t)r + 1);
	return (ssize_t)total;
}

ssize_t grey_key_triplet(const struct grey_key_conf *c, const struct addr *ip,
			 const char *sender, size_t slen, const char *rcpt,
			 size_t rlen, void *key, size_t keysize)
{
	char *k = key;
	ssize_t nl = grey_key_net(c, ip, k, keysize);
	if (nl < 0)
		return -1;
	return finish_triplet(c, (size_t)nl, sender, slen, rcpt, rlen, k,
			      keysize);
}

ssize_t grey_key_triplet_spf(const struct grey_key_conf *c, const char *domain,
			     const char *sender, size_t slen, const char *rcpt,
			     size_t rlen, void *key, size_t keysize)
{
	char *k = key;
	ssize_t nl = grey_key_spf_net(domain, k, keysize);
	if (nl < 0)
		return -1;
	return finish_triplet(c, (size_t)nl, sender, slen, rcpt, rlen, k,
			      keysize);
}

ssize_t grey_key_join(const char *net, const char *sender, const char *rcpt,
		      void *key, size_t keysize)
{
	size_t a = strlen(net), b = strlen(sender), c = strlen(rcpt);
	size_t total = a + 1 + b + 1 + c;
	char *k = key;

	if (a == 0 || total > keysize || total > STORE_KEY_MAX)
		return -1;
	memcpy(k, net, a);
	k[a] = '\0';
	memcpy(k + a + 1, sender, b);
	k[a + 1 + b] = '\0';
	memcpy(k + a + 1 + b + 1, rcpt, c);
	return (ssize_t)total;
}

int grey_key_split(const void *key, size_t keylen, struct grey_key_parts *out)
{
	const char *k = key;
	const char *z1 = memchr(k, '\0', keylen);
	if (z1 == NULL || z1 == k)
		return -1;
	size_t rest = keylen - (size_t)(z1 + 1 - k);
	const char *z2 = memchr(z1 + 1, '\0', rest);
	if (z2 == NULL)
		return -1;
	size_t last = keylen - (size_t)(z2 + 1 - k);
	if (memchr(z2 + 1, '\0', last) != NULL)
		return -1;
	out->net = k;
	out->netlen = (size_t)(z1 - k);
	out->sender = z1 + 1;
	out->senderlen = (size_t)(z2 - z1 - 1);
	out->rcpt = z2 + 1;
	out->rcptlen = last;
	return 0;
}

bool grey_key_is_spf(const struct grey_key_parts *p)
{
	size_t n = strlen(GREY_KEY_SPF_PREFIX);
	return p->netlen > n && memcmp(p->net, GREY_KEY_SPF_PREFIX, n) == 0;
}

/* Appends one escaped part; false if it does not fit. */
static bool put_part(const char *s, size_t len, char *out, size_t outsize,
		     size_t *n)
{
	static const char hex[] = "0123456789abcdef";

	if (len == 0) {
		if (*n + 2 >= outsize)
			return false;
		memcpy(out + *n, "<>", 2);
		*n += 2;
		return true;
	}
	bool is_null_lookalike = len == 2 && s[0] == '<' && s[1] == '>';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		bool esc = c <= ' ' || c >= 0x7f || c == '\\' ||
			   (i == 0 && is_null_lookalike);
		size_t need = esc ? 4 : 1;
		if (*n + need >= outsize)
			return false;
		if (esc) {
			out[(*n)++] = '\\';
			out[(*n)++] = 'x';
			out[(*n)++] = hex[c >> 4];
			out[(*n)++] = hex[c & 15];
		} else {
			out[(*n)++] = (char)c;
		}
	}
	return true;
}

ssize_t grey_key_format(const void *key, size_t keylen, char *out,
			size_t outsize)
{
	struct grey_key_parts p;
	size_t n = 0;

	if (outsize == 0 || grey_key_split(key, keylen, &p) != 0)
		return -1;
	if (!put_part(p.net, p.netlen, out, outsize, &n) || n + 1 >= outsize)
		return -1;
	out[n++] = ' ';
	if (!put_part(p.sender, p.senderlen, out, outsize, &n) ||
	    n + 1 >= outsize)
		return -1;
	out[n++] = ' ';
	if (!put_part(p.rcpt, p.rcptlen, out, outsize, &n))
		return -1;
	out[n] = '\0';
	return (ssize_t)n;
}


/* Decodes one printable part up to the next space or the end; appends it
 * to key and advances *text. -1 on a bad escape, a NUL byte, or no room. */
static int get_part(const char **text, char *key, size_t keysize, size_t *n)
{
	const unsigned char *s = (const unsigned char *)*text;
	size_t len = 0;
	while (s[len] != '\0' && s[len] != ' ')
		len++;
	*text += len;
	if (len == 2 && s[0] == '<' && s[1] == '>')
		return 0; /* the empty part */
	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		if (c == '\\') {
			int h, l;
			if (i + 3 >= len)
				return -1;
			if (s[i + 1] != 'x' || (h = str_hexval(s[i + 2])) < 0 ||
			    (l = str_hexval(s[i + 3])) < 0)
				return -1;
			c = (unsigned char)(h * 16 + l);
			if (c == '\0')
				return -1;
			i += 3;
		} else if (c < ' ' || c >= 0x7f) {
			return -1;
		}
		if (*n >= keysize)
			return -1;
		key[(*n)++] = (char)c;
	}
	return 0;
}

ssize_t grey_key_parse(const char *text, void *key, size_t keysize)
{
	char *k = key;
	size_t n = 0;

	if (keysize > STORE_KEY_MAX)
		keysize = STORE_KEY_MAX;
	if (get_part(&text, k, keysize, &n) != 0 || n == 0 || *text != ' ')
		return -1;
	text++;
	if (n >= keysize)
		return -1;
	k[n++] = '\0';
	if (get_part(&text, k, keysize, &n) != 0 || *text != ' ')
		return -1;
	text++;
	if (n >= keysize)
		return -1;
	k[n++] = '\0';
	if (get_part(&text, k, keysize, &n) != 0 || *text != '\0')
		return -1;
	return (ssize_t)n;
}
