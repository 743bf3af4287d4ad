/*
 * log - the daemon's one logging channel.
 *
 * Library modules return errors and never call this; the daemon, the CLI and
 * the server decide what to log. Output goes to syslog (facility mail, as
 * Postfix and the mail log expect), to stderr, or nowhere. In Postfix spawn
 * mode stderr is the policy socket, so that mode must use syslog.
 *
 * Untrusted text is logged through log_escape(): bounded and printable.
 */
#ifndef GREYSPF_UTIL_LOG_H
#define GREYSPF_UTIL_LOG_H

#include <stddef.h>

enum log_target { LOG_TO_SYSLOG, LOG_TO_STDERR, LOG_TO_NONE };
enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Longest escaped copy of untrusted text in one log line (Postfix logs
 * client text as %.100s; we allow more since addresses can be long). */
#define LOG_UNTRUSTED_MAX 256

void log_open(enum log_target target, const char *ident);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
void log_close(void);

void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Writes a printable, bounded copy of src[0..srclen) to dst (size dstsize,
 * always NUL-terminated): bytes outside 0x20..0x7e, backslash and double quote
 * become \xNN / \\ / \". Output longer than dstsize - 1 is cut and ends with
 * "...". Returns dst.
 */
char *log_escape(char *dst, size_t dstsize, const void *src, size_t srclen);

#endif
