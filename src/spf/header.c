/*
 * header - Received-SPF and Authentication-Results fields; see header.h.
 *
 * Output goes through a small bounded writer whose overflow is sticky, so
 * truncation is detected once at the end instead of after every piece.
 */
#include "spf/header.h"

#include <stdbool.h>
#include <string.h>

struct hbuf {
	char *buf;
	size_t size, len;
	bool overflow;
};

static void put(struct hbuf *b, char c)
{
	if (b->len + 1 >= b->size) {
		b->overflow = true;
		return;
	}
	b->buf[b->len++] = c;
}

static void puts_raw(struct hbuf *b, const char *s)
{
	while (*s != '\0')
		put(b, *s++);
}

/* Printable ASCII or '?'; never CR, LF, NUL or other control bytes. */
static char safe(unsigned char c)
{
	return (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
}

/* RFC 5322 atext. */
static bool atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') ||
	       strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool is_dot_atom(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > SPF_HEADER_VALUE_MAX || s[0] == '.' ||
	    s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (s[i + 1] == '.')
				return false;
		} else if (c == '\0' || !atext(c)) {
			return false;
		}
	}
	return true;
}

/* How much of an untrusted value to copy: all of it, or, when longer than
 * SPF_HEADER_VALUE_MAX, a prefix that leaves room for "..." so a reader
 * can tell the value was cut. */
static size_t value_keep(const char *s, bool *cut)
{
	size_t n = strnlen(s, SPF_HEADER_VALUE_MAX + 1);
	*cut = n > SPF_HEADER_VALUE_MAX;
	return *cut ? SPF_HEADER_VALUE_MAX - 3 : n;
}

static void put_quoted(struct hbuf *b, const char *s)
{
	bool cut;
	size_t n = value_keep(s, &cut);
	put(b, '"');
	for (size_t i = 0; i < n; i++) {
		char c = safe((unsigned char)s[i]);
		if (c == '"' || c == '\\')
			put(b, '\\');
		put(b, c);
	}
	if (cut)
		puts_raw(b, "...");
	put(b, '"');
}

static void put_value(struct hbuf *b, const char *s, bool always_quote)
{
	if (!always_quote && is_dot_atom(s))
		puts_raw(b, s);
	else
		put_quoted(b, s);
}

/* Text inside a comment: ctext or quoted-pair. */
static void put_ctext(struct hbuf *b, const char *s)
{
	bool cut;
	size_t n = value_keep(s, &cut);
	for (size_t i = 0; i < n; i++) {
		char c = safe((unsigned char)s[i]);
		if (c == '(' || c == ')' || c == '\\')
			put(b, '\\');
		put(b, c);
	}
	if (cut)
		puts_raw(b, "...");
}

static void put_kv(struct hbuf *b, const char *key, const char *value,
		   bool always_quote)
{
	put(b, ' ');
	puts_raw(b, key);
	put(b, '=');
	put_value(b, value, always_quote);
	put(b, ';');
}

static const char *nz(const char *s)
{
	return s != NULL ? s : "";
}

/* The identity in words for the comment: the sender address (or
 * postmaster@helo for the null sender), or the HELO name. */
static void put_identity_words(struct hbuf *b, const struct spf_header_info *h)
{
	if (h->identity == SPF_ID_HELO) {
		puts_raw(b, "helo ");
		put_ctext(b, nz(h->helo));
		return;
	}
	puts_raw(b, "domain of ");
	if (nz(h->sender)[0] == '\0') {
		puts_raw(b, "postmaster@");
		put_ctext(b, nz(h->helo));
	} else {
		put_ctext(b, h->sender);
	}
}

static void put_comment(struct hbuf *b, const struct spf_header_info *h,
			const char *ip)
{
	put(b, '(');
	put_ctext(b, h->receiver != NULL ? h->receiver : "unknown");
	puts_raw(b, ": ");
	switch (h->result) {
	case SPF_PASS:
		put_identity_words(b, h);
		puts_raw(b, " designates ");
		puts_raw(b, ip);
		puts_raw(b, " as permitted sender");
		break;
	case SPF_FAIL:
		put_identity_words(b, h);
		puts_raw(b, " does not designate ");
		puts_raw(b, ip);
		puts_raw(b, " as permitted sender");
		break;
	case SPF_SOFTFAIL:
		puts_raw(b, "transitioning ");
		put_identity_words(b, h);
		puts_raw(b, " does not designate ");
		puts_raw(b, ip);
		puts_raw(b, " as permitted sender");
		break;
	case SPF_NEUTRAL:
		puts_raw(b, ip);
		puts_raw(b, " is neither permitted nor denied by ");
		put_identity_words(b, h);
		break;
	case SPF_NONE:
		put_identity_words(b, h);
		puts_raw(b, " does not designate permitted sender hosts");
		break;
	case SPF_TEMPERROR:
		puts_raw(b, "temporary error checking ");
		put_identity_words(b, h);
		break;
	case SPF_PERMERROR:
		puts_raw(b, "permanent error checking ");
		put_identity_words(b, h);
		break;
	}
	put(b, ')');
}

static int done(struct hbuf *b)
{
	if (b->overflow || b->size == 0) {
		if (b->size > 0)
			b->buf[0] = '\0';
		return -1;
	}
	b->buf[b->len] = '\0';
	return (int)b->len;
}

int spf_header_received(const struct spf_header_info *h, char *buf, size_t size)
{
	struct hbuf b = {buf, size, 0, false};
	char ip[ADDR_STRLEN];

	addr_format(h->ip, ip, sizeof(ip));
	puts_raw(&b, SPF_HEADER_RECEIVED ": ");
	puts_raw(&b, spf_result_name(h->result));
	put(&b, ' ');
	put_comment(&b, h, ip);
	put_kv(&b, "client-ip", ip, false);
	put_kv(&b, "envelope-from", nz(h->sender), true);
	put_kv(&b, "helo", nz(h->helo), false);
	put_kv(&b, "receiver", h->receiver != NULL ? h->receiver : "unknown",
	       false);
	put_kv(&b, "identity", spf_identity_name(h->identity), false);
	if (h->mechanism != NULL)
		put_kv(&b, "mechanism", h->mechanism, true);
	if (h->problem != NULL &&
	    (h->result == SPF_TEMPERROR || h->result == SPF_PERMERROR))
		put_kv(&b, "problem", h->problem, true);
	return done(&b);
}

/* RFC 2045 token: no space, control or tspecial. */
static bool is_token(const char *s)
{
	if (s[0] == '\0' || strlen(s) > SPF_HEADER_VALUE_MAX)
		return false;
	for (const unsigned char *u = (const unsigned char *)s; *u; u++)
		if (*u <= 0x20 || *u >= 0x7f || strchr("()<>@,;:\\\"/[]?=", *u))
			return false;
	return true;
}

int spf_header_auth_results(const char *authserv_id,
			    const struct spf_header_info *h, char *buf,
			    size_t size)
{
	struct hbuf b = {buf, size, 0, false};
	char ip[ADDR_STRLEN];

	addr_format(h->ip, ip, sizeof(ip));
	puts_raw(&b, SPF_HEADER_AUTH_RESULTS ": ");
	if (is_token(nz(authserv_id)))
		puts_raw(&b, authserv_id);
	else
		put_quoted(&b, nz(authserv_id));
	puts_raw(&b, "; spf=");
	puts_raw(&b, spf_result_name(h->result));
	put(&b, ' ');
	put_comment(&b, h, ip);
	const char *value;
	if (h->identity == SPF_ID_HELO || nz(h->sender)[0] == '\0') {
		puts_raw(&b, h->identity == SPF_ID_HELO ? " smtp.helo="
							: " smtp.mailfrom=");
		value = nz(h->helo);
	} else {
		puts_raw(&b, " smtp.mailfrom=");
		const char *at = strrchr(h->sender, '@');
		value = at != NULL ? at + 1 : h->sender;
	}
	if (is_token(value))
		puts_raw(&b, value);
	else
		put_quoted(&b, value);
	return done(&b);
}
