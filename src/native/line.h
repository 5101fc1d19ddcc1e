/*
 * Shared by corral-agent (src/agent/native/util.c, logmsg) and corral-init
 * (src/backends/vm/native/init.c, say): two static binaries, each built
 * with line.c by scripts/build-native.mjs.
 */
#ifndef CORRAL_LINE_H
#define CORRAL_LINE_H

#include <stdarg.h>
#include <stddef.h>

/* Formats one line into b (cap bytes, cap >= 2): the text, cut to cap - 2
 * bytes, and a '\n', not NUL-terminated. Returns its length, or -1 when
 * the format fails. */
int format_line(char *b, size_t cap, const char *fmt, va_list ap);

#endif
