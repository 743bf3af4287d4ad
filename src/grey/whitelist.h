/*
 * whitelist - postgrey-compatible client and recipient whitelist files.
 *
 * A handle holds the entries of any number of files; it is immutable once
 * loaded, so the daemon builds a new one on SIGHUP and swaps it in (an old
 * handle stays valid until wl_free()). Files are read line by line: "#"
 * starts a comment anywhere on a line, blank lines are skipped, each other
 * line is one entry without white space inside (postgrey 1.37 syntax).
 *
 * whitelist_clients entries, tried in this order by wl_match_client():
 *   192.0.2.1, 192.0.2.0/24, 2001:db8::/32   an address or CIDR network
 *   10.1, 10.1.2                     postgrey's partial IPv4: 10.1.0.0/16
 *   example.com                      client_name example.com or any name
 *                                    below it (x.example.com), not
 *                                    badexample.com; case-insensitive; a
 *                                    leading "." is ignored
 *   /^mx[0-9]+\.example\.net$/       POSIX extended regex searched in
 *                                    client_name, case-insensitive
 * whitelist_recipients entries, wl_match_recipient():
 *   user@example.com                 that address and user+ext@example.com
 *   user@                            user or user+ext at any domain
 *   @example.com                     any user at exactly that domain
 *                                    (Postfix access(5) form)
 *   example.com                      any user at it or any subdomain
 *   /regex/                          searched in the whole recipient
 * Regexes: postgrey's are Perl regexes, so the Perl shorthands its lists
 * use are translated: \d \w \s \D \W \S, (?:...) as (...), and lazy
 * quantifiers (*? +? ?? {n,m}?) as greedy ones (same match / no-match
 * answer). Other Perl-only syntax is an error at load time.
 *
 * Names and regexes are matched against Postfix's client_name (a name
 * whose forward lookup confirmed the address, or "unknown"). The reverse
 * name (reverse_client_name, PTR only, not confirmed) is also tried only
 * when the handle was made with WL_MATCH_REVERSE_NAME: whoever controls a
 * PTR zone can make it say anything.
 *
 * Errors: loading functions return -1 with "FILE:LINE: message" in err;
 * the handle then holds the entries read before the error (callers
 * normally free it). Nothing here logs.
 */
#ifndef GREYSPF_GREY_WHITELIST_H
#define GREYSPF_GREY_WHITELIST_H

#include <stdbool.h>
#include <stddef.h>

#include "util/addr.h"

/* Longest line accepted: our choice; postgrey lines are a few dozen bytes,
 * a regex of a kilobyte is already unreasonable. */
#define WL_LINE_MAX 1024

/* wl_new() flags. */
#define WL_MATCH_REVERSE_NAME 0x1u

enum wl_kind {
	WL_CLIENT_NET,	      /* address, CIDR or partial IPv4 */
	WL_CLIENT_NAME,	      /* host name and its subdomains */
	WL_CLIENT_REGEX,      /* /regex/ on the client name */
	WL_RCPT_ADDRESS,      /* user@domain */
	WL_RCPT_LOCAL,	      /* user@ */
	WL_RCPT_DOMAIN,	      /* domain and subdomains */
	WL_RCPT_DOMAIN_EXACT, /* @domain */
	WL_RCPT_REGEX	      /* /regex/ on the recipient */
};

/* What matched, for the log line. Pointers stay valid until wl_free(). */
struct wl_entry {
	enum wl_kind kind;
	const char *text; /* the entry as written in the file */
	const char *file; /* "-" for entries added by wl_add_*() */
	unsigned line;
};

struct wl;

/* An empty handle; never NULL. Release with wl_free(). */
struct wl *wl_new(unsigned flags);
void wl_free(struct wl *wl);

/* Adds one line (comments and blank lines are accepted and ignored). file
 * and line are for messages and wl_entry; file NULL means "-". */
int wl_add_client(struct wl *wl, const char *text, const char *file,
		  unsigned line, char *err, size_t errsize);
int wl_add_recipient(struct wl *wl, const char *text, const char *file,
		     unsigned line, char *err, size_t errsize);

/* Reads a whole file. A missing file is an error unless missing_ok. */
int wl_load_clients(struct wl *wl, const char *path, bool missing_ok, char *err,
		    size_t errsize);
int wl_load_recipients(struct wl *wl, const char *path, bool missing_ok,
		       char *err, size_t errsize);

/*
 * Builds a handle from NULL-terminated lists of files (either may be
 * NULL). As postgrey does, a missing file whose name ends in ".local" is
 * skipped silently. Returns the handle, or NULL with err set.
 */
struct wl *wl_load(const char *const *client_files,
		   const char *const *recipient_files, unsigned flags,
		   char *err, size_t errsize);

/* The first entry matching the client, or NULL. ip may be NULL; the names
 * may be NULL or "". */
const struct wl_entry *wl_match_client(const struct wl *wl,
				       const struct addr *ip,
				       const char *client_name,
				       const char *reverse_name);

/* The first entry matching the recipient address, or NULL. */
const struct wl_entry *wl_match_recipient(const struct wl *wl,
					  const char *rcpt);

/* Entries loaded, for logs and `greyspf config`. */
size_t wl_count_clients(const struct wl *wl);
size_t wl_count_recipients(const struct wl *wl);

/* "net", "name", "regex", "address", "local", "domain", "@domain". */
const char *wl_kind_name(enum wl_kind k);

#endif
