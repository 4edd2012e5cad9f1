/* umalloc: parsing and formatting of option values. See base/options.h; the table, lookup,
 * reading the environment and the listings are in base/options.c.
 *
 * Constraints: as base/options.c, this code runs at the very start of the process, possibly
 * before libc's own initialisation. So: no malloc, no stdio, no locale-dependent functions.
 * Text is formatted with base/fmt.c into the caller's buffers.
 */
#include "base/options.h"

#include <limits.h>

#include "base/option_text.h"

/* ---- small string helpers (no libc: nothing here may depend on libc being initialised) ---- */

static int o_isdigit(char c) {
    return c >= '0' && c <= '9';
}

static int o_isspace(char c) {
    return c == ' ' || c == '\t';
}

static void o_trim(const char **s, size_t *n) {
    while (*n > 0 && o_isspace(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && o_isspace((*s)[*n - 1])) (*n)--;
}

/* Parse decimal digits at s[*pos..n): at least one digit; fails on overflow past max. */
static int o_parse_digits(const char *s, size_t n, size_t *pos, unsigned long long max,
                           unsigned long long *out) {
    size_t i = *pos;
    unsigned long long v = 0;
    if (i >= n || !o_isdigit(s[i])) return -1;
    for (; i < n && o_isdigit(s[i]); i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > max || v > (max - d) / 10) return -1;
        v = v * 10 + d;
    }
    *pos = i;
    *out = v;
    return 0;
}

/* ---- signals --------------------------------------------------------------------------------- */

static const struct {
    int sig;
    char name[8];
} o_signals[] = {
    {SIGHUP, "HUP"},   {SIGINT, "INT"},       {SIGQUIT, "QUIT"},     {SIGILL, "ILL"},
    {SIGTRAP, "TRAP"}, {SIGABRT, "ABRT"},     {SIGBUS, "BUS"},       {SIGFPE, "FPE"},
    {SIGKILL, "KILL"}, {SIGUSR1, "USR1"},     {SIGSEGV, "SEGV"},     {SIGUSR2, "USR2"},
    {SIGPIPE, "PIPE"}, {SIGALRM, "ALRM"},     {SIGTERM, "TERM"},     {SIGSTKFLT, "STKFLT"},
    {SIGCHLD, "CHLD"}, {SIGCONT, "CONT"},     {SIGSTOP, "STOP"},     {SIGTSTP, "TSTP"},
    {SIGTTIN, "TTIN"}, {SIGTTOU, "TTOU"},     {SIGURG, "URG"},       {SIGXCPU, "XCPU"},
    {SIGXFSZ, "XFSZ"}, {SIGVTALRM, "VTALRM"}, {SIGPROF, "PROF"},     {SIGWINCH, "WINCH"},
    {SIGIO, "IO"},     {SIGPWR, "PWR"},       {SIGSYS, "SYS"},       {SIGIOT, "IOT"},
    {SIGPOLL, "POLL"}, {SIGCLD, "CLD"},
};
#define UM_SIG_MAX 64

static int o_rtmin(void) {
    return SIGRTMIN; /* glibc: 34 (32 and 33 are its own); a plain read of a variable */
}
static int o_rtmax(void) {
    return SIGRTMAX;
}

/* A number the stats module can install a handler for. */
static int o_signal_ok(long long s) {
    return s >= 1 && s <= UM_SIG_MAX && s != SIGKILL && s != SIGSTOP && s != 32 && s != 33 &&
           s <= o_rtmax();
}

static int o_parse_signal(const char *s, size_t n, long long *out) {
    size_t pos = 0;
    unsigned long long v;
    if (o_ieq(s, n, "none")) {
        *out = 0;
        return 0;
    }
    if (n > 0 && o_isdigit(s[0])) {
        if (o_parse_digits(s, n, &pos, 1000, &v) != 0 || pos != n) return -1;
        if (!o_signal_ok((long long)v)) return -1;
        *out = (long long)v;
        return 0;
    }
    if (n >= 3 && o_lower(s[0]) == 's' && o_lower(s[1]) == 'i' && o_lower(s[2]) == 'g') {
        s += 3;
        n -= 3;
    }
    if (n >= 5 && (o_ieq(s, 5, "rtmin") || o_ieq(s, 5, "rtmax"))) {
        int is_min = o_lower(s[4]) == 'n';
        long long sig = is_min ? o_rtmin() : o_rtmax();
        if (n > 5) {
            if (s[5] != (is_min ? '+' : '-')) return -1;
            pos = 6;
            if (o_parse_digits(s, n, &pos, 64, &v) != 0 || pos != n) return -1;
            sig = is_min ? sig + (long long)v : sig - (long long)v;
            if (sig < o_rtmin() || sig > o_rtmax()) return -1;
        }
        if (!o_signal_ok(sig)) return -1;
        *out = sig;
        return 0;
    }
    for (size_t i = 0; i < sizeof o_signals / sizeof o_signals[0]; i++) {
        if (o_ieq(s, n, o_signals[i].name)) {
            if (!o_signal_ok(o_signals[i].sig)) return -1;
            *out = o_signals[i].sig;
            return 0;
        }
    }
    return -1;
}

static size_t o_format_signal(long long v, char *buf, size_t cap) {
    if (v == 0) return umi_fmt(buf, cap, "none");
    for (size_t i = 0; i < sizeof o_signals / sizeof o_signals[0]; i++) {
        if (o_signals[i].sig == v) return umi_fmt(buf, cap, "%s", o_signals[i].name);
    }
    int lo = o_rtmin(), hi = o_rtmax();
    if (v >= lo && v <= hi) {
        if (v == lo) return umi_fmt(buf, cap, "RTMIN");
        if (v == hi) return umi_fmt(buf, cap, "RTMAX");
        if (v - lo <= hi - v) return umi_fmt(buf, cap, "RTMIN+%lld", v - lo);
        return umi_fmt(buf, cap, "RTMAX-%lld", hi - v);
    }
    return umi_fmt(buf, cap, "%lld", v);
}

/* ---- node lists ------------------------------------------------------------------------------ */

static int o_parse_nodes(const char *s, size_t n, long long *out) {
    unsigned long long mask = 0;
    size_t pos = 0;
    if (n == 0) return -1;
    for (;;) {
        unsigned long long a, b;
        if (o_parse_digits(s, n, &pos, 63, &a) != 0) return -1;
        b = a;
        if (pos < n && s[pos] == '-') {
            pos++;
            if (o_parse_digits(s, n, &pos, 63, &b) != 0) return -1;
            if (b < a) return -1;
        }
        for (unsigned long long i = a; i <= b; i++) mask |= 1ULL << i;
        if (pos == n) break;
        if (s[pos] != ',') return -1;
        pos++;
    }
    *out = (long long)mask;
    return 0;
}

static size_t o_format_nodes(unsigned long long mask, char *buf, size_t cap) {
    size_t len = 0;
    if (cap > 0) buf[0] = '\0';
    for (int i = 0; i < 64;) {
        if (!(mask & (1ULL << i))) {
            i++;
            continue;
        }
        int j = i;
        while (j + 1 < 64 && (mask & (1ULL << (j + 1)))) j++;
        const char *sep = len > 0 ? "," : "";
        if (cap > len) {
            if (j == i) len += umi_fmt(buf + len, cap - len, "%s%d", sep, i);
            else len += umi_fmt(buf + len, cap - len, "%s%d-%d", sep, i, j);
        }
        i = j + 1;
    }
    return len;
}

/* ---- parsing ------------------------------------------------------------------------------- */

/* A number, optional blanks, an optional suffix from `units` (the first entry, "", is the unit
 * without a suffix), scaled, overflow-checked and range-checked against d. */
typedef struct { const char *suffix; unsigned long long mult; } o_unit;

static int o_parse_scaled(const um_option_desc *d, const o_unit *units, size_t nunits, const char *s, size_t n, long long *out) {
    size_t pos = 0;
    unsigned long long v;
    if (o_parse_digits(s, n, &pos, (unsigned long long)LLONG_MAX, &v) != 0) return -1;
    while (pos < n && o_isspace(s[pos])) pos++;
    const char *suf = s + pos;
    size_t sn = n - pos;
    unsigned long long mult = 0;
    for (size_t i = 0; i < nunits && mult == 0; i++)
        if ((sn == 0 && i == 0) || (sn != 0 && o_ieq(suf, sn, units[i].suffix))) mult = units[i].mult;
    if (mult == 0) return -1;
    if (v > (unsigned long long)LLONG_MAX / mult) return -1; /* overflow */
    long long r = (long long)(v * mult);
    if (r < d->min || r > d->max) return -1;
    *out = r;
    return 0;
}

/* Sizes: K, M, G with or without "iB" or "B", any case, all powers of 1024. */
static const o_unit o_size_units[] = {
    {"", 1}, {"b", 1}, {"k", UM_KiB}, {"kib", UM_KiB}, {"kb", UM_KiB}, {"m", UM_MiB}, {"mib", UM_MiB},
    {"mb", UM_MiB}, {"g", UM_GiB}, {"gib", UM_GiB}, {"gb", UM_GiB},
};
/* Durations: a plain number is milliseconds. */
static const o_unit o_duration_units[] = {{"", 1}, {"ms", 1}, {"s", 1000}};

static int o_parse_size(const um_option_desc *d, const char *s, size_t n, long long *out) {
    return o_parse_scaled(d, o_size_units, sizeof o_size_units / sizeof *o_size_units, s, n, out);
}

static int o_parse_duration(const um_option_desc *d, const char *s, size_t n, long long *out) {
    return o_parse_scaled(d, o_duration_units, sizeof o_duration_units / sizeof *o_duration_units, s, n, out);
}

static int o_parse_int(const um_option_desc *d, const char *s, size_t n, long long *out) {
    size_t pos = 0;
    int neg = 0;
    unsigned long long v;
    if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        pos = 1;
    }
    if (o_parse_digits(s, n, &pos, (unsigned long long)LLONG_MAX + (neg ? 1 : 0), &v) != 0 ||
        pos != n)
        return -1;
    long long r = neg ? (long long)(0ULL - v) : (long long)v;
    if (r < d->min || r > d->max) return -1;
    *out = r;
    return 0;
}

static int o_parse_bool(const char *s, size_t n, long long *out) {
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (o_ieq(s, n, yes[i])) {
            *out = 1;
            return 0;
        }
        if (o_ieq(s, n, no[i])) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Index of s among the comma-separated names in list, or -1. */
static int o_parse_enum(const char *list, const char *s, size_t n, long long *out) {
    long long idx = 0;
    const char *p = list;
    while (*p) {
        const char *e = p;
        while (*e && *e != ',') e++;
        size_t len = (size_t)(e - p);
        if (len == n) {
            size_t i = 0;
            while (i < n && o_lower(s[i]) == o_lower(p[i])) i++;
            if (i == n) {
                *out = idx;
                return 0;
            }
        }
        idx++;
        p = *e ? e + 1 : e;
    }
    return -1;
}

static int o_parse_string(const char *s, size_t n, long long *out, char *str, size_t strcap) {
    if (n >= UM_OPTION_TEXT_MAX) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) return -1;
        if (c == '%') {
            if (i + 1 >= n || (s[i + 1] != 'p' && s[i + 1] != '%')) return -1;
            i++;
        }
    }
    if (n > 0 && s[n - 1] == '/') return -1; /* names a directory, not a file */
    if (str != NULL && strcap > 0) {
        size_t m = n < strcap - 1 ? n : strcap - 1;
        for (size_t i = 0; i < m; i++) str[i] = s[i];
        str[m] = '\0';
    }
    *out = (long long)n;
    return 0;
}

int umi_option_parse_desc(const um_option_desc *d, const char *text, size_t len, long long *out,
                         char *str, size_t strcap) {
    long long v = 0;
    int rc;
    if (d->type != UM_OT_STRING) o_trim(&text, &len);
    switch (d->type) {
    case UM_OT_BOOL: rc = o_parse_bool(text, len, &v); break;
    case UM_OT_INT: rc = o_parse_int(d, text, len, &v); break;
    case UM_OT_SIZE: rc = o_parse_size(d, text, len, &v); break;
    case UM_OT_DURATION: rc = o_parse_duration(d, text, len, &v); break;
    case UM_OT_ENUM: rc = o_parse_enum(d->extra ? d->extra : "", text, len, &v); break;
    case UM_OT_SIGNAL: rc = o_parse_signal(text, len, &v); break;
    case UM_OT_NODES: rc = o_parse_nodes(text, len, &v); break;
    case UM_OT_STRING: rc = o_parse_string(text, len, &v, str, strcap); break;
    default: rc = -1; break;
    }
    if (rc == 0) *out = v;
    return rc;
}

int umi_option_parse(um_option_id id, const char *text, long long *out, char *err, size_t errlen) {
    if ((unsigned)id >= UM_OPT__COUNT || text == NULL) {
        if (err && errlen) err[0] = '\0';
        return -1;
    }
    const um_option_desc *d = &umi_option_table[id];
    int rc = umi_option_parse_desc(d, text, o_strlen(text), out, NULL, 0);
    if (rc != 0 && err && errlen) umi_option_accepted(d, err, errlen);
    return rc;
}

/* ---- formatting ---------------------------------------------------------------------------- */

static size_t o_format_size(long long v, char *buf, size_t cap) {
    if (v != 0 && v % UM_GiB == 0) return umi_fmt(buf, cap, "%lldGiB", v / UM_GiB);
    if (v != 0 && v % UM_MiB == 0) return umi_fmt(buf, cap, "%lldMiB", v / UM_MiB);
    if (v != 0 && v % UM_KiB == 0) return umi_fmt(buf, cap, "%lldKiB", v / UM_KiB);
    return umi_fmt(buf, cap, "%lld", v);
}

size_t umi_option_format(const um_option_desc *d, long long v, const char *str, char *buf,
                        size_t cap) {
    if (cap == 0) return 0;
    switch (d->type) {
    case UM_OT_BOOL: return umi_fmt(buf, cap, "%d", v != 0);
    case UM_OT_INT:
    case UM_OT_DURATION: return umi_fmt(buf, cap, "%lld", v);
    case UM_OT_SIZE: return o_format_size(v, buf, cap);
    case UM_OT_ENUM: {
        const char *p = d->extra ? d->extra : "";
        for (long long i = 0; *p; i++) {
            const char *e = p;
            while (*e && *e != ',') e++;
            if (i == v) return umi_fmt(buf, cap, "%.*s", (int)(e - p), p);
            p = *e ? e + 1 : e;
        }
        return umi_fmt(buf, cap, "%lld", v);
    }
    case UM_OT_SIGNAL: return o_format_signal(v, buf, cap);
    case UM_OT_NODES: return o_format_nodes((unsigned long long)v, buf, cap);
    case UM_OT_STRING: return umi_fmt(buf, cap, "%s", str ? str : "");
    }
    buf[0] = '\0';
    return 0;
}

size_t umi_option_accepted(const um_option_desc *d, char *buf, size_t cap) {
    char lo[32], hi[32];
    switch (d->type) {
    case UM_OT_BOOL: return umi_fmt(buf, cap, "a boolean (1/0, true/false, yes/no, on/off)");
    case UM_OT_INT: return umi_fmt(buf, cap, "an integer (%lld..%lld)", d->min, d->max);
    case UM_OT_SIZE:
        o_format_size(d->min, lo, sizeof lo);
        o_format_size(d->max, hi, sizeof hi);
        return umi_fmt(buf, cap, "a size (%s..%s; bytes, or suffix K, M, G, KiB, MiB, GiB)", lo,
                      hi);
    case UM_OT_DURATION:
        return umi_fmt(buf, cap, "a duration in ms (%lld..%lld, suffix ms or s)", d->min, d->max);
    case UM_OT_ENUM: {
        size_t n = umi_fmt(buf, cap, "one of ");
        const char *p = d->extra ? d->extra : "";
        while (*p && n + 1 < cap) {
            const char *e = p;
            while (*e && *e != ',') e++;
            n += umi_fmt(buf + n, cap - n, "%.*s%s", (int)(e - p), p, *e ? ", " : "");
            p = *e ? e + 1 : e;
        }
        return n;
    }
    case UM_OT_SIGNAL:
        return umi_fmt(buf, cap,
                      "a signal name (USR1, SIGUSR2, RTMIN+1, ...), a number 1..64 but not 9, 19, "
                      "32 or 33, or none");
    case UM_OT_NODES: return umi_fmt(buf, cap, "a list of NUMA nodes 0..63 (like 0-3,6)");
    case UM_OT_STRING:
        return umi_fmt(buf, cap,
                      "a file path (at most %d bytes, no control characters, %% only in %%p or "
                      "%%%%, not ending in /)",
                      UM_OPTION_TEXT_MAX - 1);
    }
    if (cap) buf[0] = '\0';
    return 0;
}
