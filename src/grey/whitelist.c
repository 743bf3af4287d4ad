/*
 * whitelist - loading and matching postgrey-compatible whitelists.
 *
 * Syntax and semantics are in whitelist.h. Entries are kept in two arrays
 * in file order and matched by linear scan: postgrey's shipped lists have
 * a few hundred entries, and a match is a few string compares or one
 * regexec() each. Perl-style regexes from postgrey lists are rewritten to
 * POSIX extended syntax once, at load time.
 */
#include "grey/whitelist.h"

#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/xalloc.h"

struct wl_item {
	struct wl_entry pub;
	struct cidr net; /* WL_CLIENT_NET */
	char *pattern;	 /* lower-cased name, domain, user or address */
	char *domain;	 /* WL_RCPT_ADDRESS: the part after "@" */
	regex_t re;	 /* the *_REGEX kinds */
	bool re_compiled;
};

struct wl_list {
	struct wl_item *v;
	size_t n, cap;
};

struct wl {
	unsigned flags;
	struct wl_list clients, rcpts;
	char **files; /* file names the entries point to */
	size_t nfiles;
};

struct wl *wl_new(unsigned flags)
{
	struct wl *wl = xcalloc(1, sizeof(*wl));
	wl->flags = flags;
	return wl;
}

static void list_free(struct wl_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct wl_item *it = &l->v[i];
		free((char *)it->pub.text);
		free(it->pattern);
		free(it->domain);
		if (it->re_compiled)
			regfree(&it->re);
	}
	free(l->v);
}

void wl_free(struct wl *wl)
{
	if (wl == NULL)
		return;
	list_free(&wl->clients);
	list_free(&wl->rcpts);
	for (size_t i = 0; i < wl->nfiles; i++)
		free(wl->files[i]);
	free(wl->files);
	free(wl);
}

size_t wl_count_clients(const struct wl *wl)
{
	return wl->clients.n;
}

size_t wl_count_recipients(const struct wl *wl)
{
	return wl->rcpts.n;
}

const char *wl_kind_name(enum wl_kind k)
{
	switch (k) {
	case WL_CLIENT_NET:
		return "net";
	case WL_CLIENT_NAME:
		return "name";
	case WL_CLIENT_REGEX:
	case WL_RCPT_REGEX:
		return "regex";
	case WL_RCPT_ADDRESS:
		return "address";
	case WL_RCPT_LOCAL:
		return "local";
	case WL_RCPT_DOMAIN:
		return "domain";
	case WL_RCPT_DOMAIN_EXACT:
		return "@domain";
	}
	return "unknown";
}

/* The stable copy of a file name that entries point to. */
static const char *intern_file(struct wl *wl, const char *file)
{
	if (file == NULL)
		return "-";
	if (wl->nfiles > 0 && strcmp(wl->files[wl->nfiles - 1], file) == 0)
		return wl->files[wl->nfiles - 1];
	wl->files = xreallocarray(wl->files, wl->nfiles + 1, sizeof(char *));
	wl->files[wl->nfiles] = xstrdup(file);
	return wl->files[wl->nfiles++];
}

__attribute__((format(printf, 5, 6))) static int fail(char *err, size_t errsize,
						      const char *file,
						      unsigned line,
						      const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (errsize > 0)
		snprintf(err, errsize, "%s:%u: %s", file != NULL ? file : "-",
			 line, msg);
	return -1;
}

static char *lower_dup(const char *s)
{
	char *d = xstrdup(s);
	for (char *p = d; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

/* A bounded string builder for the regex translation. */
struct sbuf {
	char *p;
	size_t n, cap;
};

static void sb_puts(struct sbuf *b, const char *s)
{
	size_t len = strlen(s);
	if (b->n + len + 1 > b->cap) {
		b->cap = (b->n + len + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, s, len + 1);
	b->n += len;
}

static void sb_putc(struct sbuf *b, char c)
{
	char s[2] = {c, '\0'};
	sb_puts(b, s);
}

/*
 * Rewrites the Perl regex syntax found in postgrey lists as POSIX ERE.
 * Returns a new string, or NULL with *why set for syntax we cannot map.
 */
static char *perl_to_ere(const char *s, const char **why)
{
	struct sbuf b = {NULL, 0, 0};
	bool in_bracket = false;

	sb_puts(&b, "");
	for (size_t i = 0; s[i] != '\0'; i++) {
		char c = s[i];
		if (c == '\\') {
			char d = s[++i];
			const char *cls = NULL, *ncls = NULL;
			switch (d) {
			case 'd':
				cls = "0-9";
				break;
			case 'w':
				cls = "[:alnum:]_";
				break;
			case 's':
				cls = "[:space:]";
				break;
			case 'D':
				ncls = "0-9";
				break;
			case 'W':
				ncls = "[:alnum:]_";
				break;
			case 'S':
				ncls = "[:space:]";
				break;
			default:
				break;
			}
			if (d == '\0') {
				*why = "trailing backslash";
				goto bad;
			}
			if (cls != NULL) {
				if (!in_bracket)
					sb_putc(&b, '[');
				sb_puts(&b, cls);
				if (!in_bracket)
					sb_putc(&b, ']');
			} else if (ncls != NULL) {
				if (in_bracket) {
					*why = "negated class inside [...]";
					goto bad;
				}
				sb_puts(&b, "[^");
				sb_puts(&b, ncls);
				sb_putc(&b, ']');
			} else if ((d >= 'a' && d <= 'z') ||
				   (d >= 'A' && d <= 'Z') ||
				   (d >= '0' && d <= '9')) {
				*why = "unsupported backslash escape";
				goto bad;
			} else if (in_bracket) {
				/* Inside POSIX brackets a backslash is
				 * literal, so drop it; "]" would close. */
				if (d == ']') {
					*why = "\\] inside [...]";
					goto bad;
				}
				sb_putc(&b, d);
			} else if (strchr(".[]()*+?{}|^$\\", d) != NULL) {
				sb_putc(&b, '\\');
				sb_putc(&b, d);
			} else {
				sb_putc(&b, d); /* \- \@ \/: just the char */
			}
			continue;
		}
		if (in_bracket) {
			if (c == '[' && s[i + 1] == ':') {
				const char *end = strstr(s + i, ":]");
				if (end == NULL) {
					*why = "unterminated [:class:]";
					goto bad;
				}
				for (; s + i < end + 2; i++)
					sb_putc(&b, s[i]);
				i--;
				continue;
			}
			if (c == ']')
				in_bracket = false;
			sb_putc(&b, c);
			continue;
		}
		if (c == '[') {
			in_bracket = true;
			sb_putc(&b, c);
			if (s[i + 1] == '^')
				sb_putc(&b, s[++i]);
			if (s[i + 1] == ']')
				sb_putc(&b, s[++i]);
			continue;
		}
		if (c == '(' && s[i + 1] == '?') {
			if (s[i + 2] != ':') {
				*why = "unsupported (?...) group";
				goto bad;
			}
			sb_putc(&b, '(');
			i += 2;
			continue;
		}
		sb_putc(&b, c);
		/* Lazy quantifier: same matches as the greedy one. */
		if ((c == '*' || c == '+' || c == '?' || c == '}') &&
		    s[i + 1] == '?')
			i++;
	}
	if (in_bracket) {
		*why = "unterminated [...]";
		goto bad;
	}
	return b.p;
bad:
	free(b.p);
	return NULL;
}

/* Compiles "/regex/" (text includes the slashes) into it->re. */
static int compile_regex(struct wl_item *it, const char *text, const char *file,
			 unsigned line, char *err, size_t errsize)
{
	size_t len = strlen(text);
	char *body = xstrndup(text + 1, len - 2);
	const char *why = NULL;
	char *ere = perl_to_ere(body, &why);

	free(body);
	if (ere == NULL)
		return fail(err, errsize, file, line, "bad regex %.100s: %s",
			    text, why);
	int rc = regcomp(&it->re, ere, REG_EXTENDED | REG_ICASE | REG_NOSUB);
	free(ere);
	if (rc != 0) {
		char msg[128];
		regerror(rc, &it->re, msg, sizeof(msg));
		return fail(err, errsize, file, line, "bad regex %.100s: %s",
			    text, msg);
	}
	it->re_compiled = true;
	return 0;
}

/*
 * Strips a comment and surrounding blanks into buf. Returns 1 for an
 * entry, 0 for nothing, -1 (err set) for an overlong line or an entry with
 * white space inside.
 */
static int clean_line(const char *text, char *buf, const char *file,
		      unsigned line, char *err, size_t errsize)
{
	size_t len = strcspn(text, "#\n");
	if (len >= WL_LINE_MAX)
		return fail(err, errsize, file, line, "line longer than %d",
			    WL_LINE_MAX);
	memcpy(buf, text, len);
	buf[len] = '\0';
	char *s = buf;
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\f' ||
	       *s == '\v')
		s++;
	size_t n = strlen(s);
	while (n > 0 && strchr(" \t\r\f\v", s[n - 1]) != NULL)
		n--;
	s[n] = '\0';
	memmove(buf, s, n + 1);
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c <= ' ' || c == 0x7f)
			return fail(err, errsize, file, line,
				    "white space or control character in "
				    "entry");
	}
	return 1;
}

static bool is_regex(const char *s)
{
	size_t n = strlen(s);
	return n >= 3 && s[0] == '/' && s[n - 1] == '/';
}

/* Prepares the next slot of l; the caller counts it (l->n++) once the
 * entry is complete, or discard()s it. */
static struct wl_item *new_item(struct wl *wl, struct wl_list *l,
				enum wl_kind kind, const char *text,
				const char *file, unsigned line)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 32;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	struct wl_item *it = &l->v[l->n];
	memset(it, 0, sizeof(*it));
	it->pub.kind = kind;
	it->pub.text = xstrdup(text);
	it->pub.file = intern_file(wl, file);
	it->pub.line = line;
	return it;
}

/* Forgets the item new_item() prepared but did not count (its regex
 * failed to compile). */
static void discard(struct wl_list *l)
{
	struct wl_item *it = &l->v[l->n];
	free((char *)it->pub.text);
	free(it->pattern);
	free(it->domain);
}

static bool looks_numeric(const char *s)
{
	return strspn(s, "0123456789./") == strlen(s);
}

int wl_add_client(struct wl *wl, const char *text, const char *file,
		  unsigned line, char *err, size_t errsize)
{
	char buf[WL_LINE_MAX];
	int rc = clean_line(text, buf, file, line, err, errsize);
	if (rc <= 0)
		return rc;

	if (is_regex(buf)) {
		struct wl_item *it = new_item(wl, &wl->clients, WL_CLIENT_REGEX,
					      buf, file, line);
		if (compile_regex(it, buf, file, line, err, errsize) != 0) {
			discard(&wl->clients);
			return -1;
		}
		wl->clients.n++;
		return 0;
	}
	if (looks_numeric(buf) || strchr(buf, ':') != NULL) {
		struct cidr net;
		/* Partial IPv4 ("10.1") is postgrey syntax; IPv6 has none. */
		if (cidr_parse(buf, &net, strchr(buf, ':') == NULL) != 0)
			return fail(err, errsize, file, line,
				    "bad address or network %.100s", buf);
		struct wl_item *it =
		    new_item(wl, &wl->clients, WL_CLIENT_NET, buf, file, line);
		it->net = net;
		wl->clients.n++;
		return 0;
	}
	/* ".example.com" (Postfix style) and "example.com." (absolute) mean
	 * example.com here; an empty label means a typo. */
	char name[WL_LINE_MAX];
	strcpy(name, buf[0] == '.' ? buf + 1 : buf);
	size_t nlen = strlen(name);
	if (nlen > 0 && name[nlen - 1] == '.')
		name[--nlen] = '\0';
	if (*name == '\0' || strchr(name, '/') != NULL ||
	    strstr(name, "..") != NULL || name[0] == '.')
		return fail(err, errsize, file, line,
			    "not a host name, address or /regex/: %.100s", buf);
	struct wl_item *it =
	    new_item(wl, &wl->clients, WL_CLIENT_NAME, buf, file, line);
	it->pattern = lower_dup(name);
	wl->clients.n++;
	return 0;
}

int wl_add_recipient(struct wl *wl, const char *text, const char *file,
		     unsigned line, char *err, size_t errsize)
{
	char buf[WL_LINE_MAX];
	int rc = clean_line(text, buf, file, line, err, errsize);
	if (rc <= 0)
		return rc;

	if (is_regex(buf)) {
		struct wl_item *it =
		    new_item(wl, &wl->rcpts, WL_RCPT_REGEX, buf, file, line);
		if (compile_regex(it, buf, file, line, err, errsize) != 0) {
			discard(&wl->rcpts);
			return -1;
		}
		wl->rcpts.n++;
		return 0;
	}
	char *at = strchr(buf, '@');
	if (at != NULL && strchr(at + 1, '@') != NULL)
		return fail(err, errsize, file, line,
			    "more than one @ in %.100s", buf);
	enum wl_kind kind;
	if (at == NULL)
		kind = WL_RCPT_DOMAIN;
	else if (at == buf)
		kind = WL_RCPT_DOMAIN_EXACT;
	else if (at[1] == '\0')
		kind = WL_RCPT_LOCAL;
	else
		kind = WL_RCPT_ADDRESS;
	if (kind == WL_RCPT_DOMAIN_EXACT && at[1] == '\0')
		return fail(err, errsize, file, line, "empty domain in %.100s",
			    buf);
	struct wl_item *it = new_item(wl, &wl->rcpts, kind, buf, file, line);
	char *low = lower_dup(buf);
	switch (kind) {
	case WL_RCPT_DOMAIN:
		it->pattern = low;
		break;
	case WL_RCPT_DOMAIN_EXACT:
		it->pattern = xstrdup(low + 1);
		free(low);
		break;
	case WL_RCPT_LOCAL:
		low[at - buf] = '\0';
		it->pattern = low;
		break;
	default:
		low[at - buf] = '\0';
		it->pattern = xstrdup(low);
		it->domain = xstrdup(low + (at - buf) + 1);
		free(low);
		break;
	}
	wl->rcpts.n++;
	return 0;
}

typedef int (*add_fn)(struct wl *, const char *, const char *, unsigned, char *,
		      size_t);

static int load_file(struct wl *wl, const char *path, bool missing_ok,
		     add_fn add, char *err, size_t errsize)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		if (errno == ENOENT && missing_ok)
			return 0;
		return fail(err, errsize, path, 0, "cannot open: %s",
			    strerror(errno));
	}
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	int rc = 0;
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		if (add(wl, line, path, lineno, err, errsize) != 0) {
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(f))
		rc = fail(err, errsize, path, lineno, "read error: %s",
			  strerror(errno));
	free(line);
	fclose(f);
	return rc;
}

int wl_load_clients(struct wl *wl, const char *path, bool missing_ok, char *err,
		    size_t errsize)
{
	return load_file(wl, path, missing_ok, wl_add_client, err, errsize);
}

int wl_load_recipients(struct wl *wl, const char *path, bool missing_ok,
		       char *err, size_t errsize)
{
	return load_file(wl, path, missing_ok, wl_add_recipient, err, errsize);
}

static bool is_local_file(const char *path)
{
	size_t n = strlen(path);
	return n >= 6 && strcmp(path + n - 6, ".local") == 0;
}

struct wl *wl_load(const char *const *client_files,
		   const char *const *recipient_files, unsigned flags,
		   char *err, size_t errsize)
{
	struct wl *wl = wl_new(flags);
	for (size_t i = 0; client_files != NULL && client_files[i]; i++)
		if (wl_load_clients(wl, client_files[i],
				    is_local_file(client_files[i]), err,
				    errsize) != 0)
			goto bad;
	for (size_t i = 0; recipient_files != NULL && recipient_files[i]; i++)
		if (wl_load_recipients(wl, recipient_files[i],
				       is_local_file(recipient_files[i]), err,
				       errsize) != 0)
			goto bad;
	return wl;
bad:
	wl_free(wl);
	return NULL;
}

static bool ieq(const char *a, size_t alen, const char *b)
{
	if (strlen(b) != alen)
		return false;
	return strncasecmp(a, b, alen) == 0;
}

/* name is pattern or ends with "." + pattern (case-insensitive). */
static bool name_match(const char *name, const char *pattern)
{
	size_t n = strlen(name), p = strlen(pattern);
	if (n < p || strcasecmp(name + n - p, pattern) != 0)
		return false;
	return n == p || name[n - p - 1] == '.';
}

static const struct wl_entry *match_name(const struct wl *wl, const char *name)
{
	if (name == NULL || *name == '\0')
		return NULL;
	for (size_t i = 0; i < wl->clients.n; i++) {
		const struct wl_item *it = &wl->clients.v[i];
		if (it->pub.kind == WL_CLIENT_NAME &&
		    name_match(name, it->pattern))
			return &it->pub;
		if (it->pub.kind == WL_CLIENT_REGEX &&
		    regexec(&it->re, name, 0, NULL, 0) == 0)
			return &it->pub;
	}
	return NULL;
}

const struct wl_entry *wl_match_client(const struct wl *wl,
				       const struct addr *ip,
				       const char *client_name,
				       const char *reverse_name)
{
	if (ip != NULL)
		for (size_t i = 0; i < wl->clients.n; i++) {
			const struct wl_item *it = &wl->clients.v[i];
			if (it->pub.kind == WL_CLIENT_NET &&
			    cidr_match(&it->net, ip))
				return &it->pub;
		}
	const struct wl_entry *e = match_name(wl, client_name);
	if (e == NULL && (wl->flags & WL_MATCH_REVERSE_NAME))
		e = match_name(wl, reverse_name);
	return e;
}

/* local is user or user+ext (postgrey: user(?:\+[^@]+)?). */
static bool local_match(const char *local, size_t llen, const char *user)
{
	size_t u = strlen(user);
	if (llen < u || strncasecmp(local, user, u) != 0)
		return false;
	return llen == u || (local[u] == '+' && llen > u + 1);
}

const struct wl_entry *wl_match_recipient(const struct wl *wl, const char *rcpt)
{
	if (rcpt == NULL)
		return NULL;
	const char *at = strrchr(rcpt, '@');
	size_t llen = at != NULL ? (size_t)(at - rcpt) : 0;
	const char *dom = at != NULL ? at + 1 : NULL;

	for (size_t i = 0; i < wl->rcpts.n; i++) {
		const struct wl_item *it = &wl->rcpts.v[i];
		switch (it->pub.kind) {
		case WL_RCPT_REGEX:
			if (regexec(&it->re, rcpt, 0, NULL, 0) == 0)
				return &it->pub;
			break;
		case WL_RCPT_ADDRESS:
			if (at != NULL &&
			    local_match(rcpt, llen, it->pattern) &&
			    ieq(dom, strlen(dom), it->domain))
				return &it->pub;
			break;
		case WL_RCPT_LOCAL:
			if (at != NULL && local_match(rcpt, llen, it->pattern))
				return &it->pub;
			break;
		case WL_RCPT_DOMAIN:
			if (at != NULL && name_match(dom, it->pattern))
				return &it->pub;
			break;
		case WL_RCPT_DOMAIN_EXACT:
			if (at != NULL && strcasecmp(dom, it->pattern) == 0)
				return &it->pub;
			break;
		default:
			break;
		}
	}
	return NULL;
}
