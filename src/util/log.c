/*
 * log - syslog/stderr logging; see log.h.
 */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static enum log_target log_target = LOG_TO_STDERR;
static enum log_level log_level = LOG_LVL_INFO;
static const char *log_ident = "greyspf";

void log_open(enum log_target target, const char *ident)
{
	log_target = target;
	if (ident != NULL)
		log_ident = ident;
	if (target == LOG_TO_SYSLOG)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level log_get_level(void)
{
	return log_level;
}

void log_close(void)
{
	if (log_target == LOG_TO_SYSLOG)
		closelog();
}

static void log_emit(enum log_level level, const char *fmt, va_list ap)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	static const char *const name[] = {"error: ", "warning: ", "", "debug: "};
	/* The stderr timestamp to the second, formatted once a second: the
	 * daemon logs a line per decision, so this is a hot path. */
	static time_t stamp_sec = -1;
	static char stamp[32];

	if (level > log_level)
		return;
	if (log_target == LOG_TO_SYSLOG) {
		char buf[2048];
		vsnprintf(buf, sizeof(buf), fmt, ap);
		syslog(prio[level], "%s%s", name[level], buf);
	} else if (log_target == LOG_TO_STDERR) {
		char line[2048 + 96];
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		if (ts.tv_sec != stamp_sec) {
			struct tm tm;
			localtime_r(&ts.tv_sec, &tm);
			strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
			stamp_sec = ts.tv_sec;
		}
		/* One buffer, one write(2): lines from one process never
		 * interleave, and nothing is formatted twice. */
		int n = snprintf(line, sizeof(line), "%s.%03ld %s: %s", stamp,
				 ts.tv_nsec / 1000000, log_ident, name[level]);
		if (n < 0 || (size_t)n >= sizeof(line))
			return;
		int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt,
				  ap);
		if (m < 0)
			return;
		size_t len = (size_t)n + (size_t)m;
		if (len > sizeof(line) - 2)
			len = sizeof(line) - 2; /* cut, as vsnprintf did */
		line[len++] = '\n';
		(void)!write(STDERR_FILENO, line, len);
	}
}

#define LOG_FN(fn, lvl)                                                        \
	void fn(const char *fmt, ...)                                          \
	{                                                                      \
		va_list ap;                                                    \
		va_start(ap, fmt);                                             \
		log_emit(lvl, fmt, ap);                                        \
		va_end(ap);                                                    \
	}
LOG_FN(log_err, LOG_LVL_ERR)
LOG_FN(log_warn, LOG_LVL_WARN)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_debug, LOG_LVL_DEBUG)

char *log_escape(char *dst, size_t dstsize, const void *src, size_t srclen)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = src;
	size_t o = 0;
	/* Room kept for "..." when the copy is cut, and the end of the last
	 * whole escape that fits before it, so a cut never splits "\xNN". */
	size_t keep = dstsize > 4 ? dstsize - 4 : 0;
	size_t safe = 0;

	if (dstsize == 0)
		return dst;
	for (size_t i = 0; i < srclen; i++) {
		char tmp[4];
		size_t n;
		unsigned char c = s[i];
		if (c == '\\' || c == '"') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			n = 2;
		} else if (c < 0x20 || c > 0x7e) {
			tmp[0] = '\\';
			tmp[1] = 'x';
			tmp[2] = hex[c >> 4];
			tmp[3] = hex[c & 15];
			n = 4;
		} else {
			tmp[0] = (char)c;
			n = 1;
		}
		if (o + n + 1 > dstsize) {
			o = safe;
			if (dstsize > 4) {
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(dst + o, tmp, n);
		o += n;
		if (o <= keep)
			safe = o;
	}
	dst[o] = '\0';
	return dst;
}
