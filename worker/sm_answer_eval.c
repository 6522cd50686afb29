/* sm_answer_eval: a small recursive-descent evaluator for final answers. Values are exact
 * rationals (int64 numerator/denominator, overflow-checked) while they can be, and doubles
 * always; recursion depth and the number of steps are bounded so hostile input costs little. */
#include "sm_answer_eval.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STEPS 20000

typedef struct parser {
    const char *s;
    size_t i;
    int depth;
    int steps;
    char *why;
    int why_len;
    bool failed;
} parser;

static bool fail(parser *p, const char *msg)
{
    if (!p->failed)
        snprintf(p->why, (size_t)p->why_len, "%s", msg);
    p->failed = true;
    return false;
}

static void skip_ws(parser *p)
{
    while (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n')
        p->i++;
}

static bool starts(parser *p, const char *w)
{
    skip_ws(p);
    size_t n = strlen(w);
    if (strncmp(p->s + p->i, w, n) != 0)
        return false;
    /* a command or name must not run on into more letters (\pi vs \pin) */
    if (isalpha((unsigned char)w[n - 1]) && isalpha((unsigned char)p->s[p->i + n]))
        return false;
    return true;
}

static bool eat(parser *p, const char *w)
{
    if (!starts(p, w))
        return false;
    p->i += strlen(w);
    return true;
}

static int64_t gcd64(int64_t a, int64_t b)
{
    if (a < 0)
        a = -a;
    if (b < 0)
        b = -b;
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static ans_val make_exact(int64_t n, int64_t d)
{
    ans_val v = {0};
    if (n == INT64_MIN || d == INT64_MIN) { /* cannot be negated (here or in gcd64) */
        v.exact = false;
        v.v = (double)n / (double)d;
        return v;
    }
    if (d < 0)
        n = -n, d = -d;
    int64_t g = gcd64(n, d);
    if (g > 1)
        n /= g, d /= g;
    v.exact = true;
    v.n = n;
    v.d = d;
    v.v = (double)n / (double)d;
    return v;
}

static ans_val make_real(double x)
{
    ans_val v = {0};
    v.v = x;
    return v;
}

static void merge_flags(ans_val *r, const ans_val *a, const ans_val *b)
{
    r->has_decimal = a->has_decimal || b->has_decimal;
    r->has_fraction = a->has_fraction || b->has_fraction;
    r->has_ops = a->has_ops || b->has_ops;
}

static ans_val v_add(ans_val a, ans_val b, int sign)
{
    ans_val r;
    int64_t x, y, n, d;
    if (a.exact && b.exact && !__builtin_mul_overflow(a.n, b.d, &x) &&
        !__builtin_mul_overflow(b.n, a.d, &y) && !(sign < 0 && y == INT64_MIN) &&
        !__builtin_add_overflow(x, sign < 0 ? -y : y, &n) && !__builtin_mul_overflow(a.d, b.d, &d))
        r = make_exact(n, d);
    else
        r = make_real(sign < 0 ? a.v - b.v : a.v + b.v);
    merge_flags(&r, &a, &b);
    r.has_ops = true;
    return r;
}

static ans_val v_mul(ans_val a, ans_val b)
{
    ans_val r;
    int64_t n, d;
    if (a.exact && b.exact && !__builtin_mul_overflow(a.n, b.n, &n) &&
        !__builtin_mul_overflow(a.d, b.d, &d))
        r = make_exact(n, d);
    else
        r = make_real(a.v * b.v);
    merge_flags(&r, &a, &b);
    r.has_ops = true;
    return r;
}

static bool v_div(parser *p, ans_val a, ans_val b, ans_val *r)
{
    if ((b.exact && b.n == 0) || b.v == 0.0)
        return fail(p, "division by zero");
    int64_t n, d;
    if (a.exact && b.exact && !__builtin_mul_overflow(a.n, b.d, &n) &&
        !__builtin_mul_overflow(a.d, b.n, &d))
        *r = make_exact(n, d);
    else
        *r = make_real(a.v / b.v);
    merge_flags(r, &a, &b);
    r->has_fraction = true;
    return true;
}

static bool isqrt_exact(int64_t x, int64_t *root)
{
    if (x < 0)
        return false;
    int64_t s = (int64_t)sqrt((double)x);
    for (int64_t c = s > 1 ? s - 1 : 0; c <= s + 1; c++) {
        if (c != 0 && c > INT64_MAX / c)
            break;
        if (c * c == x) {
            *root = c;
            return true;
        }
    }
    return false;
}

static bool v_sqrt(parser *p, ans_val a, ans_val *r)
{
    if (a.v < 0)
        return fail(p, "square root of a negative number");
    int64_t rn, rd;
    if (a.exact && isqrt_exact(a.n, &rn) && isqrt_exact(a.d, &rd))
        *r = make_exact(rn, rd);
    else
        *r = make_real(sqrt(a.v));
    r->has_decimal = a.has_decimal;
    r->has_fraction = a.has_fraction;
    r->has_ops = true;
    return true;
}

static bool v_pow(parser *p, ans_val a, ans_val b, ans_val *r)
{
    if (b.exact && b.d == 1 && b.n >= -64 && b.n <= 64 && a.exact) {
        int64_t e = b.n < 0 ? -b.n : b.n;
        int64_t n = 1, d = 1;
        bool ok = true;
        for (int64_t k = 0; k < e && ok; k++)
            ok = !__builtin_mul_overflow(n, a.n, &n) && !__builtin_mul_overflow(d, a.d, &d);
        if (ok) {
            if (b.n < 0) {
                if (n == 0)
                    return fail(p, "division by zero");
                int64_t t = n;
                n = d;
                d = t;
            }
            *r = make_exact(n, d);
            merge_flags(r, &a, &b);
            r->has_ops = true;
            return true;
        }
    }
    if (a.v == 0 && b.v < 0)
        return fail(p, "division by zero");
    *r = make_real(pow(a.v, b.v));
    merge_flags(r, &a, &b);
    r->has_ops = true;
    return true;
}

static bool expr(parser *p, ans_val *out);
static bool unary(parser *p, ans_val *out);

/* {expr} or, LaTeX style, a single digit or letter (\frac12, \sqrt2). */
static bool group(parser *p, ans_val *out)
{
    skip_ws(p);
    if (p->s[p->i] == '{') {
        p->i++;
        if (!expr(p, out))
            return false;
        skip_ws(p);
        if (p->s[p->i] != '}')
            return fail(p, "missing }");
        p->i++;
        return true;
    }
    if (isdigit((unsigned char)p->s[p->i])) {
        *out = make_exact(p->s[p->i] - '0', 1);
        p->i++;
        return true;
    }
    return fail(p, "expected {...} after a command");
}

static bool number(parser *p, ans_val *out)
{
    size_t st = p->i;
    int64_t n = 0, d = 1;
    bool exact = true, dec = false;
    int digits = 0;
    while (isdigit((unsigned char)p->s[p->i])) {
        if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, p->s[p->i] - '0', &n))
            exact = false;
        p->i++;
        digits++;
    }
    if (p->s[p->i] == '.' && isdigit((unsigned char)p->s[p->i + 1])) {
        dec = true;
        p->i++;
        while (isdigit((unsigned char)p->s[p->i])) {
            if (exact && (__builtin_mul_overflow(n, 10, &n) ||
                          __builtin_add_overflow(n, p->s[p->i] - '0', &n) ||
                          __builtin_mul_overflow(d, 10, &d)))
                exact = false;
            p->i++;
            digits++;
        }
    }
    if (digits == 0)
        return fail(p, "expected a number");
    /* scientific notation: 1.5e-3, 2E10 */
    if ((p->s[p->i] == 'e' || p->s[p->i] == 'E') &&
        (isdigit((unsigned char)p->s[p->i + 1]) ||
         ((p->s[p->i + 1] == '-' || p->s[p->i + 1] == '+') &&
          isdigit((unsigned char)p->s[p->i + 2])))) {
        size_t j = p->i + 1;
        bool neg = p->s[j] == '-';
        if (p->s[j] == '-' || p->s[j] == '+')
            j++;
        int64_t e = 0;
        while (isdigit((unsigned char)p->s[j])) {
            if (e < 100000)
                e = e * 10 + (p->s[j] - '0');
            j++;
        }
        p->i = j;
        ans_val m = exact ? make_exact(n, d) : make_real(0);
        if (!exact)
            return fail(p, "number too long");
        ans_val ten = make_exact(10, 1), ev = make_exact(neg ? -e : e, 1);
        if (!v_pow(p, m.exact ? make_exact(10, 1) : ten, ev, out))
            return false;
        *out = v_mul(m, *out);
        out->has_ops = false;
        out->has_fraction = false;
        out->has_decimal = true;
        return true;
    }
    char buf[64];
    size_t len = p->i - st;
    double v;
    if (len < sizeof buf) {
        memcpy(buf, p->s + st, len);
        buf[len] = '\0';
        v = strtod(buf, NULL);
    } else {
        v = exact ? (double)n / (double)d : INFINITY; /* > 60 digits: only as a double */
        if (!exact) {
            /* magnitude from the digit count is enough to compare with tolerance */
            size_t intdigits = 0;
            while (isdigit((unsigned char)p->s[st + intdigits]))
                intdigits++;
            v = intdigits > 300 ? INFINITY
                                : pow(10.0, (double)intdigits - 1) *
                                      ((p->s[st] - '0') + (p->s[st + 1] - '0') / 10.0);
        }
    }
    *out = exact ? make_exact(n, d) : make_real(v);
    out->has_decimal = dec;
    return true;
}

static bool primary(parser *p, ans_val *out)
{
    if (++p->steps > MAX_STEPS)
        return fail(p, "expression too long");
    skip_ws(p);
    char c = p->s[p->i];
    if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)p->s[p->i + 1])))
        return number(p, out);
    if (c == '(' || c == '[' || c == '{') {
        char close = c == '(' ? ')' : c == '[' ? ']' : '}';
        p->i++;
        if (!expr(p, out))
            return false;
        skip_ws(p);
        if (p->s[p->i] != close)
            return fail(p, "unbalanced brackets");
        p->i++;
        return true;
    }
    if (c == '|') {
        p->i++;
        if (!expr(p, out))
            return false;
        skip_ws(p);
        if (p->s[p->i] != '|')
            return fail(p, "unbalanced |");
        p->i++;
        if (out->v < 0) {
            if (out->exact)
                out->n = -out->n;
            out->v = -out->v;
        }
        out->has_ops = true;
        return true;
    }
    if (eat(p, "\\frac")) {
        ans_val a, b;
        if (!group(p, &a) || !group(p, &b))
            return false;
        return v_div(p, a, b, out);
    }
    if (eat(p, "\\sqrt")) {
        ans_val idx = {0}, a;
        bool has_idx = false;
        skip_ws(p);
        if (p->s[p->i] == '[') {
            p->i++;
            if (!expr(p, &idx))
                return false;
            skip_ws(p);
            if (p->s[p->i] != ']')
                return fail(p, "missing ]");
            p->i++;
            has_idx = true;
        }
        if (!group(p, &a))
            return false;
        if (!has_idx || (idx.exact && idx.n == 2 && idx.d == 1))
            return v_sqrt(p, a, out);
        if (idx.v == 0)
            return fail(p, "zeroth root");
        if (a.v < 0)
            return fail(p, "root of a negative number");
        *out = make_real(pow(a.v, 1.0 / idx.v));
        out->has_ops = true;
        return true;
    }
    if (eat(p, "sqrt")) {
        ans_val a;
        skip_ws(p);
        if (p->s[p->i] == '(' || p->s[p->i] == '{') {
            if (!primary(p, &a))
                return false;
        } else if (!unary(p, &a)) {
            return false;
        }
        return v_sqrt(p, a, out);
    }
    if (eat(p, "\\pi") || eat(p, "pi")) {
        *out = make_real(M_PI);
        out->has_ops = true;
        return true;
    }
    if (c == '\0')
        return fail(p, "unexpected end");
    if (isalpha((unsigned char)c) || c == '\\')
        return fail(p, "unknown symbol");
    return fail(p, "unexpected character");
}

/* primary ('^' exponent)?, right-associative; '!' for small factorials. */
static bool power(parser *p, ans_val *out)
{
    if (!primary(p, out))
        return false;
    skip_ws(p);
    if (p->s[p->i] == '!' && p->s[p->i + 1] != '=') {
        p->i++;
        if (!out->exact || out->d != 1 || out->n < 0 || out->n > 20)
            return fail(p, "factorial of a non-integer or too large");
        int64_t f = 1;
        for (int64_t k = 2; k <= out->n; k++)
            f *= k;
        *out = make_exact(f, 1);
        out->has_ops = true;
        skip_ws(p);
    }
    if (p->s[p->i] == '^') {
        p->i++;
        if (++p->depth > ANS_EVAL_MAX_DEPTH)
            return fail(p, "expression nested too deeply");
        ans_val e;
        skip_ws(p);
        bool ok = p->s[p->i] == '{' ? group(p, &e) : unary(p, &e);
        p->depth--;
        if (!ok)
            return false;
        return v_pow(p, *out, e, out);
    }
    return true;
}

static bool unary(parser *p, ans_val *out)
{
    if (++p->depth > ANS_EVAL_MAX_DEPTH)
        return fail(p, "expression nested too deeply");
    skip_ws(p);
    bool ok;
    if (p->s[p->i] == '-' || p->s[p->i] == '+') {
        bool neg = p->s[p->i] == '-';
        p->i++;
        ok = unary(p, out);
        if (ok && neg) {
            if (out->exact && out->n != INT64_MIN)
                out->n = -out->n;
            else
                out->exact = false;
            out->v = -out->v;
        }
    } else {
        ok = power(p, out);
    }
    p->depth--;
    return ok;
}

static bool starts_primary(parser *p)
{
    skip_ws(p);
    char c = p->s[p->i];
    return isdigit((unsigned char)c) || c == '(' || c == '{' || c == '[' || starts(p, "\\sqrt") ||
           starts(p, "\\frac") || starts(p, "\\pi") || starts(p, "pi") || starts(p, "sqrt");
}

/* Whether s[from..to) is an optionally signed run of digits (a mixed number's whole part). */
static bool plain_integer(const char *s, size_t from, size_t to)
{
    while (from < to && (s[from] == ' ' || s[from] == '-' || s[from] == '+'))
        from++;
    while (to > from && s[to - 1] == ' ')
        to--;
    if (from == to)
        return false;
    for (size_t i = from; i < to; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

static bool term(parser *p, ans_val *out)
{
    skip_ws(p);
    size_t start = p->i;
    if (!unary(p, out))
        return false;
    /* a mixed number: 3\frac{1}{2} is 3 + 1/2 (and -3\frac{1}{2} is -(3 + 1/2)) */
    if (plain_integer(p->s, start, p->i) && out->exact && out->d == 1 && starts(p, "\\frac")) {
        ans_val f;
        if (!power(p, &f))
            return false;
        bool neg = out->n < 0 || (out->n == 0 && p->s[start] == '-');
        if (neg && f.exact && f.n != INT64_MIN)
            f.n = -f.n;
        if (neg)
            f.v = -f.v;
        *out = v_add(*out, f, 1);
    }
    for (;;) {
        if (++p->steps > MAX_STEPS)
            return fail(p, "expression too long");
        skip_ws(p);
        char c = p->s[p->i];
        ans_val b;
        if (c == '*') {
            p->i++;
            if (!unary(p, &b))
                return false;
            *out = v_mul(*out, b);
        } else if (c == '/') {
            p->i++;
            if (!unary(p, &b))
                return false;
            if (!v_div(p, *out, b, out))
                return false;
        } else if (starts_primary(p)) {
            /* implicit multiplication: 2\sqrt{3}, 2pi, 3(4+1) */
            if (!power(p, &b))
                return false;
            *out = v_mul(*out, b);
        } else {
            return true;
        }
    }
}

static bool expr(parser *p, ans_val *out)
{
    if (++p->depth > ANS_EVAL_MAX_DEPTH)
        return fail(p, "expression nested too deeply");
    bool ok = term(p, out);
    while (ok) {
        skip_ws(p);
        char c = p->s[p->i];
        if (c != '+' && c != '-')
            break;
        p->i++;
        ans_val b;
        ok = term(p, &b);
        if (ok)
            *out = v_add(*out, b, c == '-' ? -1 : 1);
    }
    p->depth--;
    return ok;
}

bool ans_eval(const char *s, ans_val *out, char *why, int why_len)
{
    parser p = {.s = s, .why = why, .why_len = why_len};
    memset(out, 0, sizeof *out);
    if (!expr(&p, out))
        return false;
    skip_ws(&p);
    if (p.s[p.i] != '\0') {
        fail(&p, isalpha((unsigned char)p.s[p.i]) || p.s[p.i] == '\\' ? "unknown symbol"
                                                                      : "unexpected character");
        return false;
    }
    if (!isfinite(out->v)) {
        fail(&p, "value too large to compare numerically");
        return false;
    }
    return true;
}
