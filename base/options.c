/* umalloc: run-time options (environment variables UMALLOC_*). See base/options.h.
 *
 * Constraints: this code runs at the very start of the process, possibly inside the first call
 * to malloc, possibly before libc's own initialisation (environ may still be NULL then). So:
 * no malloc, no stdio, no locale-dependent functions; only the system-call wrappers open, read,
 * close, write, getpid, getuid/geteuid/getgid/getegid and getauxval, which need nothing
 * initialised. Text is formatted with base/fmt.c into buffers on the stack.
 *
 * The parsing and formatting of option values is in base/option_values.c.
 */
#include "base/base.h"
#include "base/io.h"
#include "base/options.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "umalloc.h"
#include "base/option_text.h"

#define UM_EXPORT __attribute__((visibility("default")))

/* ---- the table ------------------------------------------------------------------------------ */

#define UM_OPT_DESC_ROW(NAME, TYPE, DEF, MIN, MAX, EXTRA, HELP) \
    [UM_OPT_##NAME] = {"UMALLOC_" #NAME, UM_OT_##TYPE, (DEF), (MIN), (MAX), (EXTRA), (HELP)},
const um_option_desc umi_option_table[UM_OPT__COUNT] = {UM_OPTIONS(UM_OPT_DESC_ROW)};
#undef UM_OPT_DESC_ROW

#define UM_OPT_DEFAULT_ROW(NAME, TYPE, DEF, MIN, MAX, EXTRA, HELP) [UM_OPT_##NAME] = (DEF),
long long umi_option_values[UM_OPT__COUNT] = {UM_OPTIONS(UM_OPT_DEFAULT_ROW)};
#undef UM_OPT_DEFAULT_ROW

static const char o_type_names[][10] = {
    [UM_OT_BOOL] = "bool",     [UM_OT_INT] = "int",       [UM_OT_SIZE] = "size",
    [UM_OT_DURATION] = "duration", [UM_OT_ENUM] = "enum", [UM_OT_SIGNAL] = "signal",
    [UM_OT_NODES] = "nodes",   [UM_OT_STRING] = "string",
};

/* Effective string values (STRING options only), and where each value came from. */
UM_BIG_BSS static char o_str_storage[UM_OPT__COUNT][UM_OPTION_TEXT_MAX];
static unsigned char o_str_set[UM_OPT__COUNT];
static unsigned char o_source[UM_OPT__COUNT];

/* 0: not read yet; 1: being read (by one thread); 2: done. */
static int o_init_state;

#define UM_PREFIX "UMALLOC_"
#define UM_PREFIX_LEN 8

/* ---- lookup -------------------------------------------------------------------------------- */

static void o_strip_prefix(const char **name, size_t *n) {
    if (*n >= UM_PREFIX_LEN && o_ieq(*name, UM_PREFIX_LEN, UM_PREFIX)) {
        *name += UM_PREFIX_LEN;
        *n -= UM_PREFIX_LEN;
    }
}

const um_option_desc *umi_option_find(const char *name, size_t n) {
    if (name == NULL) return NULL;
    o_strip_prefix(&name, &n);
    for (int i = 0; i < UM_OPT__COUNT; i++) {
        if (o_ieq(name, n, umi_option_table[i].name + UM_PREFIX_LEN)) return &umi_option_table[i];
    }
    return NULL;
}

/* Exact, case-sensitive lookup of a full variable name, as the environment is read. */
static int o_find_exact(const char *name, size_t n) {
    for (int i = 0; i < UM_OPT__COUNT; i++) {
        const char *t = umi_option_table[i].name;
        size_t j = 0;
        while (j < n && t[j] == name[j]) j++;
        if (j == n && t[j] == '\0') return i;
    }
    return -1;
}

#define UM_NAME_MAX 64

/* Levenshtein distance, case-insensitive, of two names of at most UM_NAME_MAX bytes. */
static size_t o_distance(const char *a, size_t an, const char *b, size_t bn) {
    size_t row[UM_NAME_MAX + 1];
    for (size_t j = 0; j <= bn; j++) row[j] = j;
    for (size_t i = 1; i <= an; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= bn; j++) {
            size_t up = row[j];
            size_t cost = o_lower(a[i - 1]) == o_lower(b[j - 1]) ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[bn];
}

const um_option_desc *umi_option_suggest(const char *name, size_t n) {
    if (name == NULL) return NULL;
    o_strip_prefix(&name, &n);
    if (n == 0 || n > UM_NAME_MAX) return NULL;
    const um_option_desc *best = NULL;
    size_t best_d = (size_t)-1;
    for (int i = 0; i < UM_OPT__COUNT; i++) {
        const char *t = umi_option_table[i].name + UM_PREFIX_LEN;
        size_t tn = o_strlen(t);
        if (tn > UM_NAME_MAX) continue;
        size_t dist = o_distance(name, n, t, tn);
        /* A prefix of a known name (or the other way round) is a likely typo too. */
        size_t shorter = n < tn ? n : tn;
        if (shorter >= 4) {
            size_t k = 0;
            while (k < shorter && o_lower(name[k]) == o_lower(t[k])) k++;
            if (k == shorter && dist > 2) dist = 2;
        }
        if (dist < best_d) {
            best_d = dist;
            best = &umi_option_table[i];
        }
    }
    size_t limit = n / 3 > 2 ? n / 3 : 2;
    return best_d <= limit ? best : NULL;
}

/* ---- output -------------------------------------------------------------------------------- */

/* The default as UMALLOC_HELP, the warnings and docs/tuning.md show it: like
 * umi_option_format, but an empty string shows as "". */
static size_t o_format_default(const um_option_desc *d, char *buf, size_t cap) {
    size_t n = umi_option_format(d, d->def, d->type == UM_OT_STRING ? d->extra : NULL, buf, cap);
    if (n == 0) n = umi_fmt(buf, cap, "\"\"");
    return n;
}

/* A line written in as few write(2) calls as possible: flushed when full and at the end. */
typedef struct {
    char buf[512];
    size_t len;
} o_line;

static void o_line_flush(o_line *l) {
    umi_write_err(l->buf, l->len);
    l->len = 0;
}

static void o_line_put(o_line *l, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (l->len == sizeof l->buf) o_line_flush(l);
        l->buf[l->len++] = s[i];
    }
}

static void o_line_puts(o_line *l, const char *s) {
    o_line_put(l, s, o_strlen(s));
}

__attribute__((format(printf, 2, 3))) static void o_line_printf(o_line *l, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    size_t n = umi_vfmt(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    o_line_put(l, tmp, n);
}

/* A value as given by the user, made safe for one line: control bytes as \xNN, cut after
 * max bytes with "...". */
static void o_line_value(o_line *l, const char *s, size_t n, size_t max) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        if (i == max) {
            o_line_puts(l, "...");
            return;
        }
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            o_line_put(l, esc, 4);
        } else {
            o_line_put(l, (const char *)&c, 1);
        }
    }
}

#define UM_ECHO_MAX 200

static void o_warn_invalid(const um_option_desc *d, const char *val, size_t vn) {
    o_line l;
    char tmp[256];
    l.len = 0;
    o_line_printf(&l, "umalloc: %s=", d->name);
    o_line_value(&l, val, vn, UM_ECHO_MAX);
    o_line_puts(&l, " is not valid: expected ");
    umi_option_accepted(d, tmp, sizeof tmp);
    o_line_puts(&l, tmp);
    o_line_puts(&l, "; using the default ");
    o_format_default(d, tmp, sizeof tmp);
    o_line_puts(&l, tmp);
    o_line_puts(&l, "\n");
    o_line_flush(&l);
}

static void o_warn_unknown(const char *name, size_t nn, const char *val, size_t vn) {
    o_line l;
    l.len = 0;
    o_line_puts(&l, "umalloc: ");
    o_line_value(&l, name, nn, UM_ECHO_MAX);
    o_line_puts(&l, "=");
    o_line_value(&l, val, vn, UM_ECHO_MAX);
    o_line_puts(&l, " is not a known option");
    const um_option_desc *s = umi_option_suggest(name, nn);
    if (s != NULL) o_line_printf(&l, ": did you mean %s?", s->name);
    o_line_puts(&l, " (UMALLOC_HELP=1 lists all options); ignored\n");
    o_line_flush(&l);
}

void umi_options_print_help(void) {
    o_line l;
    char tmp[256];
    l.len = 0;
    o_line_puts(&l, "umalloc: umalloc " UMALLOC_VERSION
                     ": options, set as environment variables (UMALLOC_VERBOSE=1 shows the "
                     "values in effect):\n");
    o_line_flush(&l);
    for (int i = 0; i < UM_OPT__COUNT; i++) {
        const um_option_desc *d = &umi_option_table[i];
        o_format_default(d, tmp, sizeof tmp);
        o_line_printf(&l, "umalloc:   %-26s %-9s default %s\n", d->name, o_type_names[d->type],
                       tmp);
        o_line_printf(&l, "umalloc:       %s\n", d->help);
        umi_option_accepted(d, tmp, sizeof tmp);
        o_line_printf(&l, "umalloc:       accepted: %s\n", tmp);
        o_line_flush(&l);
    }
}

void umi_options_print_verbose(void) {
    o_line l;
    char tmp[128];
    l.len = 0;
    o_line_printf(&l, "umalloc: umalloc %s (pid %d): options in effect\n", UMALLOC_VERSION,
                   (int)getpid());
    o_line_flush(&l);
    for (int i = 0; i < UM_OPT__COUNT; i++) {
        const um_option_desc *d = &umi_option_table[i];
        o_line_printf(&l, "umalloc:   %s=", d->name);
        if (d->type == UM_OT_STRING) {
            const char *s = umi_option_str((um_option_id)i);
            o_line_value(&l, s, o_strlen(s), UM_OPTION_TEXT_MAX);
        } else {
            umi_option_format(d, umi_option_values[i], NULL, tmp, sizeof tmp);
            o_line_puts(&l, tmp);
        }
        switch ((um_option_source)o_source[i]) {
        case UM_SRC_ENV: o_line_puts(&l, " (environment)\n"); break;
        case UM_SRC_REJECTED:
            o_line_puts(&l, " (default; the environment's value was not valid)\n");
            break;
        default: o_line_puts(&l, " (default)\n"); break;
        }
        o_line_flush(&l);
    }
}

/* ---- reading the environment --------------------------------------------------------------- */

static unsigned char o_seen[UM_OPT__COUNT];

static void o_reset(void) {
    for (int i = 0; i < UM_OPT__COUNT; i++) {
        umi_option_values[i] = umi_option_table[i].def;
        o_source[i] = UM_SRC_DEFAULT;
        o_str_set[i] = 0;
        o_seen[i] = 0;
    }
}

/* One environment entry that starts with UMALLOC_ (n bytes, no NUL needed). truncated: the
 * entry was longer than we could hold (then its value is not valid). */
static void o_entry(const char *e, size_t n, int truncated) {
    size_t eq = 0;
    while (eq < n && e[eq] != '=') eq++;
    if (eq == n) return; /* not NAME=VALUE */
    const char *val = e + eq + 1;
    size_t vn = n - eq - 1;
    int id = o_find_exact(e, eq);
    if (id < 0) {
        o_warn_unknown(e, eq, val, vn);
        return;
    }
    if (o_seen[id]) return; /* the first one counts, as for getenv */
    o_seen[id] = 1;
    const um_option_desc *d = &umi_option_table[id];
    long long v;
    if (!truncated &&
        umi_option_parse_desc(d, val, vn, &v, o_str_storage[id], sizeof o_str_storage[id]) == 0) {
        umi_option_values[id] = v;
        o_source[id] = UM_SRC_ENV;
        if (d->type == UM_OT_STRING) o_str_set[id] = 1;
    } else {
        o_source[id] = UM_SRC_REJECTED;
        o_warn_invalid(d, val, vn);
    }
}

static int o_has_prefix(const char *s) {
    for (int i = 0; i < UM_PREFIX_LEN; i++) {
        if (s[i] != UM_PREFIX[i]) return 0;
    }
    return 1;
}

static void o_scan_envp(char *const *envp) {
    for (; *envp != NULL; envp++) {
        if (o_has_prefix(*envp)) o_entry(*envp, o_strlen(*envp), 0);
    }
}

/* environ is not set yet: read the environment the process started with from /proc. The file
 * is read in chunks; only entries that start with UMALLOC_ are kept, in a static buffer (we
 * run once, under o_init_state). */
UM_BIG_BSS static char o_proc_chunk[4096];
UM_BIG_BSS static char o_proc_entry[UM_OPTION_TEXT_MAX + 256];

static void o_scan_proc(void) {
    int fd = umi_io_open("/proc/self/environ", O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) return; /* no /proc: the defaults it is */
    size_t elen = 0;   /* bytes of the current entry seen so far */
    int keep = 1;      /* the current entry may still start with UMALLOC_ */
    int truncated = 0; /* ...and was longer than o_proc_entry */
    for (;;) {
        ssize_t r = umi_io_read(fd, o_proc_chunk, sizeof o_proc_chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        for (ssize_t i = 0; i < r; i++) {
            char c = o_proc_chunk[i];
            if (c == '\0') {
                if (keep && elen >= UM_PREFIX_LEN) o_entry(o_proc_entry, elen, truncated);
                elen = 0;
                keep = 1;
                truncated = 0;
                continue;
            }
            if (!keep) continue;
            if (elen < UM_PREFIX_LEN && c != UM_PREFIX[elen]) {
                keep = 0;
                continue;
            }
            if (elen < sizeof o_proc_entry) o_proc_entry[elen++] = c;
            else truncated = 1;
        }
    }
    if (keep && elen >= UM_PREFIX_LEN) o_entry(o_proc_entry, elen, truncated);
    umi_io_close(fd);
}

int umi_options_secure(void) {
    /* AT_SECURE is what ld.so and glibc's tunables go by (setuid, setgid, file capabilities);
     * the id comparison (four system calls in every process) is a fallback for an aux vector
     * without it. errno is the caller's: this runs inside its first malloc. */
    int saved = errno;
    errno = 0;
    unsigned long secure = getauxval(AT_SECURE);
    int missing = secure == 0 && errno == ENOENT;
    errno = saved;
    if (!missing) return secure != 0;
    return getuid() != geteuid() || getgid() != getegid();
}

static void o_load(char *const *envp, int use_proc, int secure) {
    o_reset();
    if (!secure) {
        if (envp != NULL) o_scan_envp(envp);
        else if (use_proc) o_scan_proc();
    }
    if (umi_option_values[UM_OPT_HELP]) umi_options_print_help();
    if (umi_option_values[UM_OPT_VERBOSE]) umi_options_print_verbose();
}

void umi_options_load(char *const *envp, int secure) {
    int saved = errno;
    o_load(envp, 0, secure);
    __atomic_store_n(&o_init_state, 2, __ATOMIC_RELEASE);
    errno = saved;
}

extern char **environ;

void umi_options_init(void) {
    if (__atomic_load_n(&o_init_state, __ATOMIC_ACQUIRE) == 2) return;
    int expected = 0;
    if (__atomic_compare_exchange_n(&o_init_state, &expected, 1, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        int saved = errno;
        char **envp = __atomic_load_n(&environ, __ATOMIC_RELAXED);
        o_load(envp, 1, umi_options_secure());
        errno = saved;
        __atomic_store_n(&o_init_state, 2, __ATOMIC_RELEASE);
        return;
    }
    /* Another thread is reading the environment: it takes microseconds. */
    while (__atomic_load_n(&o_init_state, __ATOMIC_ACQUIRE) != 2) __builtin_ia32_pause();
}

#if defined(UM_PRELOAD)
/* The preload library reads its options when the process allocates first (umi_process_init);
 * a program that never allocates (/bin/true) must still get its UMALLOC_HELP / UMALLOC_VERBOSE
 * listing and its warnings: read them at load time too, at the latest. Idempotent, so a
 * constructor of the core that runs umi_process_init makes this a no-op. Not in libumalloc.a,
 * whose users call um_* explicitly. */
__attribute__((constructor)) static void o_options_ctor(void) {
    umi_options_init();
}
#endif

const char *umi_option_str(um_option_id id) {
    if ((unsigned)id >= UM_OPT__COUNT) return "";
    if (o_str_set[id]) return o_str_storage[id];
    const um_option_desc *d = &umi_option_table[id];
    return (d->type == UM_OT_STRING && d->extra != NULL) ? d->extra : "";
}

um_option_source umi_option_source(um_option_id id) {
    if ((unsigned)id >= UM_OPT__COUNT) return UM_SRC_DEFAULT;
    return (um_option_source)o_source[id];
}

/* ---- the public API ------------------------------------------------------------------------ */

UM_EXPORT int um_option_get(const char *name, long long *value);
UM_EXPORT int um_option_get_string(const char *name, char *buf, size_t len);

/* The option a public call names, or NULL with errno = ENOENT. */
static const um_option_desc *o_lookup(const char *name) {
    umi_options_init();
    const um_option_desc *d = name ? umi_option_find(name, o_strlen(name)) : NULL;
    if (d == NULL) errno = ENOENT;
    return d;
}

UM_EXPORT int um_option_get(const char *name, long long *value) {
    const um_option_desc *d = o_lookup(name);
    if (d == NULL) return -1;
    um_option_id id = (um_option_id)(d - umi_option_table);
    if (value != NULL) {
        *value = d->type == UM_OT_STRING ? (long long)o_strlen(umi_option_str(id))
                                         : umi_option_values[id];
    }
    return 0;
}

UM_EXPORT int um_option_get_string(const char *name, char *buf, size_t len) {
    const um_option_desc *d = o_lookup(name);
    if (d == NULL) return -1;
    um_option_id id = (um_option_id)(d - umi_option_table);
    char tmp[128];
    const char *text = tmp;
    size_t n;
    if (d->type == UM_OT_STRING) {
        text = umi_option_str(id);
        n = o_strlen(text);
    } else {
        n = umi_option_format(d, umi_option_values[id], NULL, tmp, sizeof tmp);
    }
    if (buf == NULL || len == 0) {
        errno = ERANGE;
        return -1;
    }
    size_t m = n < len - 1 ? n : len - 1;
    for (size_t i = 0; i < m; i++) buf[i] = text[i];
    buf[m] = '\0';
    if (m < n) {
        errno = ERANGE;
        return -1;
    }
    return 0;
}
