/*
 * corral-agent: the JSON parser of request headers (at most MAX_HEADER
 * bytes) and its typed getters.
 */
#include "agent.h"

void jfree(struct jdoc *d)
{
	free(d->n);
	free(d->sb);
	d->n = NULL;
	d->sb = NULL;
}

static int jnew(struct jdoc *d, int type)
{
	if (d->cnt == d->cap) {
		int nc = d->cap ? d->cap * 2 : 32;
		struct jnode *nn = realloc(d->n, (size_t)nc * sizeof *nn);
		if (!nn)
			return -1;
		d->n = nn;
		d->cap = nc;
	}
	struct jnode *x = &d->n[d->cnt];
	memset(x, 0, sizeof *x);
	x->type = type;
	x->next = x->child = -1;
	return d->cnt++;
}

static void jws(struct jdoc *d)
{
	while (d->p < d->e && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
		d->p++;
}

static int jhex4(const char *p, const char *e)
{
	if (e - p < 4)
		return -1;
	int v = 0;
	for (int k = 0; k < 4; k++) {
		char c = p[k];
		v <<= 4;
		if (c >= '0' && c <= '9') v |= c - '0';
		else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
		else return -1;
	}
	return v;
}

static int jstring(struct jdoc *d, const char **out, size_t *outlen)
{
	const char *p = d->p + 1, *e = d->e; /* skip the opening quote */
	char *start = d->sb + d->sbl, *w = start;
	while (p < e) {
		unsigned char c = (unsigned char)*p++;
		if (c == '"') {
			*w = 0;
			*out = start;
			*outlen = (size_t)(w - start);
			d->sbl += (size_t)(w - start) + 1;
			d->p = p;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c != '\\') {
			*w++ = (char)c;
			continue;
		}
		if (p >= e)
			return -1;
		c = (unsigned char)*p++;
		switch (c) {
		case '"': case '\\': case '/': *w++ = (char)c; break;
		case 'b': *w++ = '\b'; break;
		case 'f': *w++ = '\f'; break;
		case 'n': *w++ = '\n'; break;
		case 'r': *w++ = '\r'; break;
		case 't': *w++ = '\t'; break;
		case 'u': {
			int cp = jhex4(p, e);
			if (cp < 0)
				return -1;
			p += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				int lo = (e - p >= 6 && p[0] == '\\' && p[1] == 'u') ? jhex4(p + 2, e) : -1;
				if (lo >= 0xDC00 && lo <= 0xDFFF) {
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					p += 6;
				} else {
					cp = 0xFFFD;
				}
			} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
				cp = 0xFFFD;
			}
			if (cp < 0x80) {
				*w++ = (char)cp;
			} else if (cp < 0x800) {
				*w++ = (char)(0xC0 | cp >> 6);
				*w++ = (char)(0x80 | (cp & 0x3F));
			} else if (cp < 0x10000) {
				*w++ = (char)(0xE0 | cp >> 12);
				*w++ = (char)(0x80 | (cp >> 6 & 0x3F));
				*w++ = (char)(0x80 | (cp & 0x3F));
			} else {
				*w++ = (char)(0xF0 | cp >> 18);
				*w++ = (char)(0x80 | (cp >> 12 & 0x3F));
				*w++ = (char)(0x80 | (cp >> 6 & 0x3F));
				*w++ = (char)(0x80 | (cp & 0x3F));
			}
			break;
		}
		default:
			return -1;
		}
	}
	return -1;
}

static bool isdig(char c) { return c >= '0' && c <= '9'; }

static int jnumber(struct jdoc *d, int idx)
{
	const char *s = d->p, *p = s, *e = d->e;
	bool isint = true;
	if (p < e && *p == '-')
		p++;
	if (p < e && *p == '0') {
		p++;
	} else if (p < e && *p >= '1' && *p <= '9') {
		while (p < e && isdig(*p))
			p++;
	} else {
		return -1;
	}
	if (p < e && *p == '.') {
		isint = false;
		p++;
		if (p >= e || !isdig(*p))
			return -1;
		while (p < e && isdig(*p))
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		isint = false;
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (p >= e || !isdig(*p))
			return -1;
		while (p < e && isdig(*p))
			p++;
	}
	char tmp[320];
	size_t n = (size_t)(p - s);
	if (n >= sizeof tmp)
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = 0;
	struct jnode *x = &d->n[idx];
	x->d = strtod(tmp, NULL);
	if (isint) {
		const char *q = tmp;
		bool neg = *q == '-';
		if (neg)
			q++;
		uint64_t v = 0;
		for (; *q; q++) {
			unsigned dg = (unsigned)(*q - '0');
			if (v > (UINT64_C(9223372036854775808) - dg) / 10) {
				isint = false;
				break;
			}
			v = v * 10 + dg;
		}
		if (isint && !neg && v > INT64_MAX)
			isint = false;
		if (isint)
			x->i = neg ? (int64_t)(0 - v) : (int64_t)v;
	}
	x->isint = isint;
	d->p = p;
	return 0;
}

static int jvalue(struct jdoc *d)
{
	jws(d);
	if (d->p >= d->e || ++d->depth > 64)
		return -1;
	int idx = -1;
	char c = *d->p;
	if (c == '{' || c == '[') {
		bool obj = c == '{';
		idx = jnew(d, obj ? J_OBJ : J_ARR);
		if (idx < 0)
			return -1;
		d->p++;
		jws(d);
		if (d->p < d->e && *d->p == (obj ? '}' : ']')) {
			d->p++;
			d->depth--;
			return idx;
		}
		int last = -1;
		for (;;) {
			const char *key = NULL;
			size_t klen = 0;
			if (obj) {
				jws(d);
				if (d->p >= d->e || *d->p != '"' || jstring(d, &key, &klen) < 0)
					return -1;
				jws(d);
				if (d->p >= d->e || *d->p != ':')
					return -1;
				d->p++;
			}
			int ch = jvalue(d);
			if (ch < 0)
				return -1;
			d->n[ch].key = key;
			d->n[ch].klen = klen;
			if (last < 0)
				d->n[idx].child = ch;
			else
				d->n[last].next = ch;
			last = ch;
			jws(d);
			if (d->p >= d->e)
				return -1;
			if (*d->p == ',') {
				d->p++;
				continue;
			}
			if (*d->p != (obj ? '}' : ']'))
				return -1;
			d->p++;
			break;
		}
	} else if (c == '"') {
		idx = jnew(d, J_STR);
		if (idx < 0)
			return -1;
		const char *s;
		size_t sl;
		if (jstring(d, &s, &sl) < 0)
			return -1;
		d->n[idx].s = s;
		d->n[idx].slen = sl;
	} else if (c == '-' || isdig(c)) {
		idx = jnew(d, J_NUM);
		if (idx < 0 || jnumber(d, idx) < 0)
			return -1;
	} else {
		static const struct { const char *w; int t; } lits[] = {
			{"true", J_TRUE}, {"false", J_FALSE}, {"null", J_NULL}};
		for (size_t k = 0; k < 3 && idx < 0; k++) {
			size_t l = strlen(lits[k].w);
			if ((size_t)(d->e - d->p) >= l && !memcmp(d->p, lits[k].w, l)) {
				idx = jnew(d, lits[k].t);
				if (idx < 0)
					return -1;
				d->p += l;
			}
		}
		if (idx < 0)
			return -1;
	}
	d->depth--;
	return idx;
}

int jparse(struct jdoc *d, const char *s, size_t n)
{
	memset(d, 0, sizeof *d);
	d->sb = malloc(n + 1);
	if (!d->sb)
		return -1;
	d->p = s;
	d->e = s + n;
	if (jvalue(d) != 0)
		return -1;
	jws(d);
	return d->p == d->e ? 0 : -1;
}

/* Member of object `obj` named `key` (the last one if repeated), or -1. */
int jget(const struct jdoc *d, int obj, const char *key)
{
	size_t kl = strlen(key);
	int found = -1;
	for (int c = d->n[obj].child; c >= 0; c = d->n[c].next)
		if (d->n[c].klen == kl && !memcmp(d->n[c].key, key, kl))
			found = c;
	return found;
}

/* get_*: 1 = present, 0 = absent or null, -1 = wrong type. */
int get_str(const struct jdoc *d, const char *key, const char **s, size_t *l)
{
	int i = jget(d, 0, key);
	if (i < 0 || d->n[i].type == J_NULL)
		return 0;
	if (d->n[i].type != J_STR)
		return -1;
	*s = d->n[i].s;
	*l = d->n[i].slen;
	return 1;
}

int get_bool(const struct jdoc *d, const char *key, bool *out)
{
	int i = jget(d, 0, key);
	if (i < 0 || d->n[i].type == J_NULL)
		return 0;
	if (d->n[i].type != J_TRUE && d->n[i].type != J_FALSE)
		return -1;
	*out = d->n[i].type == J_TRUE;
	return 1;
}

int get_int(const struct jdoc *d, const char *key, int64_t *out)
{
	int i = jget(d, 0, key);
	if (i < 0 || d->n[i].type == J_NULL)
		return 0;
	const struct jnode *x = &d->n[i];
	if (x->type != J_NUM)
		return -1;
	if (x->isint) {
		*out = x->i;
		return 1;
	}
	/* integral decimals/exponents (5e3, 2.0) are accepted */
	if (x->d != x->d || x->d < -9.2e18 || x->d > 9.2e18 || (double)(int64_t)x->d != x->d)
		return -1;
	*out = (int64_t)x->d;
	return 1;
}

