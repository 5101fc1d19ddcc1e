/* One line of a log or a console message (line.h). */
#include <stdio.h>
#include "line.h"

int format_line(char *b, size_t cap, const char *fmt, va_list ap)
{
	int n = vsnprintf(b, cap - 1, fmt, ap);
	if (n < 0)
		return -1;
	if ((size_t)n > cap - 2)
		n = (int)(cap - 2);
	b[n++] = '\n';
	return n;
}
