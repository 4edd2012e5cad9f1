/* Unit tests of the options module (base/options.c) and the formatter (base/fmt.c), linked
 * with build/libumalloc.a (plain, ASan+UBSan, TSan). The parsers and the environment reader are
 * called directly; the environment is passed as an array to umi_options_load, so nothing here
 * depends on the environment the tests run in. Behaviour in real processes (LD_PRELOAD,
 * setuid, /bin/true) is tested by test/sys_options.c.
 *
 * Suites: options_fmt, options_parse, options_load, options_api.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fmt.h"
#include "base/options.h"
#include "umalloc.h"

/* The public API, until include/umalloc.h declares it. */
int um_option_get(const char *name, long long *value);
int um_option_get_string(const char *name, char *buf, size_t len);

extern char **environ;

/* ---- capturing fd 2 ---------------------------------------------------------------------- */

static int uo_saved_fd = -1, uo_cap_fd = -1;
static char uo_cap[1 << 16];

static void uo_capture_begin(void) {
    char path[] = "/tmp/umalloc-unit-options-XXXXXX";
    fflush(stderr);
    uo_cap_fd = mkstemp(path);
    cr_assert_geq(uo_cap_fd, 0);
    unlink(path);
    uo_saved_fd = dup(2);
    dup2(uo_cap_fd, 2);
}

/* Returns what was written to fd 2 since uo_capture_begin. */
static const char *uo_capture_end(void) {
    dup2(uo_saved_fd, 2);
    close(uo_saved_fd);
    ssize_t n = pread(uo_cap_fd, uo_cap, sizeof uo_cap - 1, 0);
    close(uo_cap_fd);
    uo_cap[n > 0 ? n : 0] = '\0';
    return uo_cap;
}

static int uo_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* Load envp (NULL-terminated), capturing what is printed. */
static const char *uo_load(char *const *envp, int secure) {
    uo_capture_begin();
    umi_options_load(envp, secure);
    return uo_capture_end();
}

/* ---- options_fmt ---------------------------------------------------------------------------- */

#define UO_FMT_EQ(expect, ...)                                                                   \
    do {                                                                                         \
        char b_[256];                                                                            \
        size_t n_ = umi_fmt(b_, sizeof b_, __VA_ARGS__);                                          \
        cr_expect_str_eq(b_, expect);                                                            \
        cr_expect_eq(n_, strlen(expect));                                                        \
    } while (0)

static size_t uo_fmt_raw(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = umi_vfmt(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

Test(options_fmt, integers) {
    UO_FMT_EQ("0 -5 42", "%d %d %i", 0, -5, 42);
    UO_FMT_EQ("-2147483648 2147483647", "%d %d", INT_MIN, INT_MAX);
    UO_FMT_EQ("4294967295", "%u", UINT_MAX);
    UO_FMT_EQ("-9223372036854775808", "%lld", LLONG_MIN);
    UO_FMT_EQ("18446744073709551615", "%llu", ULLONG_MAX);
    UO_FMT_EQ("-1 123", "%ld %lu", -1L, 123UL);
    UO_FMT_EQ("12345 -3", "%zu %zd", (size_t)12345, (ssize_t)-3);
    UO_FMT_EQ("beef BEEF ffffffffffffffff 1f", "%x %X %llx %zx", 0xbeefu, 0xbeefu, ULLONG_MAX,
              (size_t)31);
    UO_FMT_EQ("7", "%td", (ptrdiff_t)7);
}

Test(options_fmt, strings_chars_pointers_percent) {
    UO_FMT_EQ("a-b", "%s-%s", "a", "b");
    const char *volatile null_str = NULL;
    UO_FMT_EQ("(null)", "%s", null_str);
    UO_FMT_EQ("x%y", "%c%%%c", 'x', 'y');
    UO_FMT_EQ("(nil)", "%p", (void *)NULL);
    char want[64];
    void *p = (void *)(uintptr_t)0x7ffd1234abcdULL;
    snprintf(want, sizeof want, "%p", p);
    UO_FMT_EQ(want, "%p", p);
}

Test(options_fmt, width_precision_flags) {
    UO_FMT_EQ("   42|42   |00042", "%5d|%-5d|%05d", 42, 42, 42);
    UO_FMT_EQ("  -42|-0042", "%5d|%05d", -42, -42);
    UO_FMT_EQ("0000beef", "%08x", 0xbeefu);
    UO_FMT_EQ("ab        |", "%-10s|", "ab");
    UO_FMT_EQ("        ab|", "%10s|", "ab");
    UO_FMT_EQ("abc", "%.3s", "abcdef");
    UO_FMT_EQ("ab", "%.*s", 2, "abcdef");
    UO_FMT_EQ("   7", "%*d", 4, 7);
    UO_FMT_EQ("7   |", "%*d|", -4, 7);
    UO_FMT_EQ("abc", "%.10s", "abc");
}

Test(options_fmt, matches_snprintf) {
    static const char *const fmts[] = {"%d", "%5d", "%-7d|", "%08d", "%u", "%x", "%X", "%010x"};
    static const long long vals[] = {0, 1, -1, 7, 255, 65535, 123456789, -987654321, INT_MAX, INT_MIN};
    for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
        for (size_t v = 0; v < sizeof vals / sizeof vals[0]; v++) {
            char a[64], b[64];
            int x = (int)vals[v];
            umi_fmt(a, sizeof a, fmts[f], x);
            snprintf(b, sizeof b, fmts[f], x);
            cr_expect_str_eq(a, b, "format %s, value %d", fmts[f], x);
        }
    }
    for (size_t v = 0; v < sizeof vals / sizeof vals[0]; v++) {
        char a[64], b[64];
        umi_fmt(a, sizeof a, "%lld|%llx|%20lld|%-20llu|", vals[v], (unsigned long long)vals[v],
               vals[v], (unsigned long long)vals[v]);
        snprintf(b, sizeof b, "%lld|%llx|%20lld|%-20llu|", vals[v], (unsigned long long)vals[v],
                 vals[v], (unsigned long long)vals[v]);
        cr_expect_str_eq(a, b);
    }
}

Test(options_fmt, truncation_and_odd_input) {
    char b[16];
    memset(b, 'Z', sizeof b);
    cr_expect_eq(umi_fmt(b, 5, "hello world"), 4);
    cr_expect_str_eq(b, "hell");
    cr_expect_eq(b[5], 'Z', "wrote past cap");
    cr_expect_eq(umi_fmt(b, 1, "abc"), 0);
    cr_expect_str_eq(b, "");
    b[0] = 'Q';
    cr_expect_eq(umi_fmt(b, 0, "abc"), 0);
    cr_expect_eq(b[0], 'Q');
    cr_expect_eq(umi_fmt(NULL, 10, "abc"), 0);
    cr_expect_eq(umi_fmt(b, 8, "%d", -1234567890), 7);
    cr_expect_str_eq(b, "-123456");
    /* Formats the compiler would warn about, through a wrapper without format checking. */
    cr_expect_eq(uo_fmt_raw(b, sizeof b, "%q"), 2);
    cr_expect_str_eq(b, "%q");
    cr_expect_eq(uo_fmt_raw(b, sizeof b, "50%"), 3);
    cr_expect_str_eq(b, "50%");
    UO_FMT_EQ("", "%s", "");
}

Test(options_fmt, writers_preserve_errno) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    errno = 1234;
    cr_expect_eq(umi_write_all(fds[1], "hello", 5), 0);
    cr_expect_eq(errno, 1234);
    cr_expect_eq(umi_dprintf(fds[1], " %d-%s\n", 42, "x"), 6);
    cr_expect_eq(errno, 1234);
    char buf[32] = {0};
    cr_expect_eq(read(fds[0], buf, sizeof buf), 11);
    cr_expect_str_eq(buf, "hello 42-x\n");
    close(fds[0]);
    close(fds[1]);
    errno = 77;
    cr_expect_eq(umi_write_all(fds[1], "x", 1), -1); /* closed: EBADF, not reported in errno */
    cr_expect_eq(errno, 77);
    uo_capture_begin();
    umi_write_err("to stderr\n", 10);
    cr_expect_str_eq(uo_capture_end(), "to stderr\n");
}

static volatile sig_atomic_t uo_sig_ok;

static void uo_handler(int sig) {
    char buf[64];
    size_t n = umi_fmt(buf, sizeof buf, "sig %d %s %x", sig, "in handler", 255u);
    uo_sig_ok = n == strlen("sig 10 in handler ff") && memcmp(buf, "sig 10 in handler ff", n) == 0;
}

Test(options_fmt, usable_in_a_signal_handler) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = uo_handler;
    sigaction(SIGUSR1, &sa, NULL);
    char buf[128];
    for (int i = 0; i < 100; i++) {
        umi_fmt(buf, sizeof buf, "%s %d", "outer", i);
        if (i == 50) raise(SIGUSR1);
        char want[32];
        snprintf(want, sizeof want, "outer %d", i);
        cr_expect_str_eq(buf, want);
    }
    cr_expect(uo_sig_ok);
}

static void *uo_fmt_thread(void *arg) {
    long id = (long)(intptr_t)arg;
    for (int i = 0; i < 2000; i++) {
        char a[64], b[64];
        umi_fmt(a, sizeof a, "%ld:%d:%s:%x", id, i, "t", (unsigned)i);
        snprintf(b, sizeof b, "%ld:%d:%s:%x", id, i, "t", (unsigned)i);
        if (strcmp(a, b) != 0) return (void *)1;
    }
    return NULL;
}

Test(options_fmt, reentrant_across_threads) {
    pthread_t t[4];
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, uo_fmt_thread, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        cr_expect_null(r);
    }
}

/* ---- options_parse -------------------------------------------------------------------------- */

static int uo_parse(um_option_id id, const char *text, long long *v) {
    char err[256];
    return umi_option_parse(id, text, v, err, sizeof err);
}

static void uo_ok(um_option_id id, const char *text, long long want) {
    long long v = -999;
    int rc = uo_parse(id, text, &v);
    cr_expect_eq(rc, 0, "%s=\"%s\" was rejected", umi_option_table[id].name, text);
    if (rc == 0) cr_expect_eq(v, want, "%s=\"%s\" gave %lld, not %lld", umi_option_table[id].name, text, v, want);
}

static void uo_bad(um_option_id id, const char *text) {
    long long v = -999;
    cr_expect_eq(uo_parse(id, text, &v), -1, "%s=\"%s\" was accepted (%lld)",
                 umi_option_table[id].name, text, v);
    cr_expect_eq(v, -999, "a rejected value changed the output");
}

static const um_option_desc uo_nodes = {"UMALLOC_TEST_NODES", UM_OT_NODES, 0, 0, 0, NULL, "nodes"};
static const um_option_desc uo_int = {"UMALLOC_TEST_INT", UM_OT_INT, 0, -100, 1000, NULL, "int"};
static const um_option_desc uo_wide_size = {"UMALLOC_TEST_SIZE", UM_OT_SIZE, 0, 0, LLONG_MAX, NULL, "size"};

static int uo_parse_d(const um_option_desc *d, const char *text, long long *v) {
    return umi_option_parse_desc(d, text, strlen(text), v, NULL, 0);
}

Test(options_parse, table_is_consistent) {
    for (int i = 0; i < UM_OPT__COUNT; i++) {
        const um_option_desc *d = &umi_option_table[i];
        cr_assert_not_null(d->name, "row %d", i);
        cr_expect_eq(strncmp(d->name, "UMALLOC_", 8), 0, "%s", d->name);
        cr_expect_lt(strlen(d->name), 64);
        cr_expect(d->help && d->help[0], "%s: no help", d->name);
        cr_expect_null(strchr(d->help, '|'), "%s: '|' in help breaks docs/tuning.md", d->name);
        cr_expect_null(strchr(d->help, '\n'), "%s: help is one line", d->name);
        char acc[512];
        umi_option_accepted(d, acc, sizeof acc);
        cr_expect_null(strchr(acc, '|'), "%s: '|' in accepted values", d->name);
        for (int j = 0; j < i; j++) cr_expect_str_neq(d->name, umi_option_table[j].name);
        if (d->type == UM_OT_ENUM) cr_expect_not_null(d->extra, "%s: enum without names", d->name);
        if (d->type == UM_OT_STRING) cr_expect_not_null(d->extra, "%s: no default string", d->name);
        if (d->type == UM_OT_INT || d->type == UM_OT_SIZE || d->type == UM_OT_DURATION) {
            cr_expect_leq(d->min, d->max, "%s", d->name);
            cr_expect(d->def >= d->min && d->def <= d->max, "%s: default out of range", d->name);
        }
        /* The default, printed, parses back to itself. */
        char text[UM_OPTION_TEXT_MAX];
        umi_option_format(d, d->def, d->type == UM_OT_STRING ? d->extra : NULL, text, sizeof text);
        long long v = -1;
        char str[UM_OPTION_TEXT_MAX];
        cr_expect_eq(umi_option_parse_desc(d, text, strlen(text), &v, str, sizeof str), 0,
                     "%s: default \"%s\" does not parse", d->name, text);
        if (d->type == UM_OT_STRING) cr_expect_str_eq(str, d->extra);
        else cr_expect_eq(v, d->def, "%s: default \"%s\" parses to %lld", d->name, text, v);
        /* Before any init, the values are the defaults. */
        cr_expect(umi_option_find(d->name, strlen(d->name)) == d);
    }
}

Test(options_parse, defaults_of_this_issue) {
    cr_expect_eq(umi_option_table[UM_OPT_VERBOSE].def, 0);
    cr_expect_eq(umi_option_table[UM_OPT_HELP].def, 0);
    cr_expect_eq(umi_option_table[UM_OPT_PURGE_DELAY_MS].def, 100);
    cr_expect_eq(umi_option_table[UM_OPT_PURGE_DELAY_MS].max, 3600000);
    cr_expect_eq(umi_option_table[UM_OPT_LARGE_THRESHOLD].def, 512 * 1024);
    cr_expect_eq(umi_option_table[UM_OPT_LARGE_THRESHOLD].min, 4 * 1024);
    cr_expect_eq(umi_option_table[UM_OPT_LARGE_THRESHOLD].max, 512 * 1024);
    cr_expect_eq(umi_option_table[UM_OPT_STATS_SIGNAL].def, SIGUSR1);
    cr_expect_eq(umi_option_table[UM_OPT_STATS_AT_EXIT].def, 0);
    cr_expect_str_eq(umi_option_table[UM_OPT_STATS_FILE].extra, "");
    cr_expect_eq(umi_option_table[UM_OPT_STATS_FORMAT].def, UM_STATS_FORMAT_TEXT);
}

Test(options_parse, booleans) {
    const char *yes[] = {"1", "true", "TRUE", "True", "yes", "YES", "on", "ON", "oN", " 1 ", "\ttrue"};
    const char *no[] = {"0", "false", "FALSE", "no", "No", "off", "OFF", " off "};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) uo_ok(UM_OPT_VERBOSE, yes[i], 1);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) uo_ok(UM_OPT_STATS_AT_EXIT, no[i], 0);
    const char *bad[] = {"", " ", "2", "-1", "01", "y", "n", "yess", "tru", "of", "onn", "1 1", "true!"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) uo_bad(UM_OPT_HELP, bad[i]);
}

Test(options_parse, sizes) {
    um_option_id L = UM_OPT_LARGE_THRESHOLD;
    uo_ok(L, "4096", 4096);
    uo_ok(L, "4K", 4096);
    uo_ok(L, "4k", 4096);
    uo_ok(L, "4KiB", 4096);
    uo_ok(L, "4kib", 4096);
    uo_ok(L, "4KB", 4096);
    uo_ok(L, "4 K", 4096);
    uo_ok(L, " 64K ", 65536);
    uo_ok(L, "100000", 100000);
    uo_ok(L, "100000B", 100000);
    uo_ok(L, "512K", 524288);
    uo_ok(L, "524288", 524288);
    uo_ok(L, "0004K", 4096);
    const char *bad[] = {"",   "K",   "4095", "3K", "513K", "1M", "1G",   "-4K", "+4K", "4.5K",
                         "4KK", "4Ki", "4 KiB x", "0x1000", "4T", "1e4", "18446744073709551616",
                         "99999999999999999999999999", "9223372036854775807K"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) uo_bad(L, bad[i]);

    long long v;
    const struct {
        const char *t;
        long long v;
    } wide[] = {{"1M", 1LL << 20},        {"1m", 1LL << 20},     {"1MiB", 1LL << 20},
                {"1MB", 1LL << 20},       {"3g", 3LL << 30},     {"3GiB", 3LL << 30},
                {"0", 0},                 {"9223372036854775807", LLONG_MAX},
                {"8589934591G", 8589934591LL << 30}};
    for (size_t i = 0; i < sizeof wide / sizeof *wide; i++) {
        cr_expect_eq(uo_parse_d(&uo_wide_size, wide[i].t, &v), 0, "%s", wide[i].t);
        cr_expect_eq(v, wide[i].v, "%s", wide[i].t);
    }
    /* Overflow is an error, not a wrap. */
    const char *over[] = {"9223372036854775808", "8589934592G", "9007199254740992K",
                          "18446744073709551617", "8796093022208M"};
    for (size_t i = 0; i < sizeof over / sizeof *over; i++)
        cr_expect_eq(uo_parse_d(&uo_wide_size, over[i], &v), -1, "%s overflowed silently", over[i]);
}

Test(options_parse, durations) {
    um_option_id P = UM_OPT_PURGE_DELAY_MS;
    uo_ok(P, "0", 0);
    uo_ok(P, "10", 10);
    uo_ok(P, "10ms", 10);
    uo_ok(P, "10MS", 10);
    uo_ok(P, "10 ms", 10);
    uo_ok(P, "2s", 2000);
    uo_ok(P, "2S", 2000);
    uo_ok(P, "0s", 0);
    uo_ok(P, "3600000", 3600000);
    uo_ok(P, "3600s", 3600000);
    uo_ok(P, "3600000ms", 3600000);
    const char *bad[] = {"",   "abc", "-1", "3600001", "3601s", "1h",  "1m",  "1.5s", "1,5",
                         "ms", "s",   "10 s s", "0x10", "+5", "9223372036854775807s",
                         "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) uo_bad(P, bad[i]);
}

Test(options_parse, accepted_text_is_the_documented_one) {
    char err[256];
    long long v;
    cr_expect_eq(umi_option_parse(UM_OPT_PURGE_DELAY_MS, "abc", &v, err, sizeof err), -1);
    cr_expect_str_eq(err, "a duration in ms (0..3600000, suffix ms or s)");
    umi_option_parse(UM_OPT_STATS_FORMAT, "xml", &v, err, sizeof err);
    cr_expect_str_eq(err, "one of text, json");
    umi_option_parse(UM_OPT_VERBOSE, "2", &v, err, sizeof err);
    cr_expect_str_eq(err, "a boolean (1/0, true/false, yes/no, on/off)");
    umi_option_parse(UM_OPT_LARGE_THRESHOLD, "1", &v, err, sizeof err);
    cr_expect_str_eq(err, "a size (4KiB..512KiB; bytes, or suffix K, M, G, KiB, MiB, GiB)");
    umi_option_accepted(&uo_int, err, sizeof err);
    cr_expect_str_eq(err, "an integer (-100..1000)");
    cr_expect_eq(umi_option_parse((um_option_id)UM_OPT__COUNT, "1", &v, err, sizeof err), -1);
}

Test(options_parse, enums) {
    uo_ok(UM_OPT_STATS_FORMAT, "text", 0);
    uo_ok(UM_OPT_STATS_FORMAT, "json", 1);
    uo_ok(UM_OPT_STATS_FORMAT, "JSON", 1);
    uo_ok(UM_OPT_STATS_FORMAT, " Text ", 0);
    const char *bad[] = {"", "xml", "jso", "jsonl", "0", "1", "text,json", "te xt", ","};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) uo_bad(UM_OPT_STATS_FORMAT, bad[i]);
    char buf[32];
    umi_option_format(&umi_option_table[UM_OPT_STATS_FORMAT], 1, NULL, buf, sizeof buf);
    cr_expect_str_eq(buf, "json");
}

Test(options_parse, signals) {
    um_option_id S = UM_OPT_STATS_SIGNAL;
    uo_ok(S, "USR1", SIGUSR1);
    uo_ok(S, "usr1", SIGUSR1);
    uo_ok(S, "SIGUSR1", SIGUSR1);
    uo_ok(S, "sigusr2", SIGUSR2);
    uo_ok(S, "HUP", SIGHUP);
    uo_ok(S, "SIGTERM", SIGTERM);
    uo_ok(S, "10", 10);
    uo_ok(S, "1", 1);
    uo_ok(S, "64", 64);
    uo_ok(S, "none", 0);
    uo_ok(S, "NONE", 0);
    uo_ok(S, "RTMIN", SIGRTMIN);
    uo_ok(S, "SIGRTMIN+3", SIGRTMIN + 3);
    uo_ok(S, "rtmax", SIGRTMAX);
    uo_ok(S, "RTMAX-2", SIGRTMAX - 2);
    const char *bad[] = {"",  "0",  "65", "9",   "19",  "32",  "33",     "KILL",  "SIGKILL",
                         "STOP", "sigstop", "FOO", "SIG", "SIG10", "USR1x", "-10", "10x",
                         "RTMIN+99", "RTMIN-1", "RTMAX+1", "RTMIN+", "1000000000000000000000"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) uo_bad(S, bad[i]);

    const um_option_desc *d = &umi_option_table[S];
    const struct {
        long long v;
        const char *t;
    } names[] = {{0, "none"}, {SIGUSR1, "USR1"}, {SIGUSR2, "USR2"}, {SIGRTMIN, "RTMIN"},
                 {SIGRTMIN + 1, "RTMIN+1"}, {SIGRTMAX - 1, "RTMAX-1"}, {SIGRTMAX, "RTMAX"}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char buf[32];
        umi_option_format(d, names[i].v, NULL, buf, sizeof buf);
        cr_expect_str_eq(buf, names[i].t);
    }
    /* Every number that is accepted prints as something that parses back to it. */
    for (long long sig = 1; sig <= 64; sig++) {
        char num[24], buf[32];
        long long v = -1, w = -1;
        snprintf(num, sizeof num, "%lld", sig);
        if (uo_parse(S, num, &v) != 0) continue;
        cr_expect_eq(v, sig);
        umi_option_format(d, sig, NULL, buf, sizeof buf);
        cr_expect_eq(uo_parse(S, buf, &w), 0, "%lld printed as %s, which is rejected", sig, buf);
        cr_expect_eq(w, sig, "%lld printed as %s, which parses to %lld", sig, buf, w);
    }
}

Test(options_parse, node_lists) {
    long long v;
    const struct {
        const char *t;
        unsigned long long mask;
        const char *canon;
    } ok[] = {{"0", 1, "0"},
              {"0-3,6", 0x4f, "0-3,6"},
              {"63", 1ULL << 63, "63"},
              {"0-63", ~0ULL, "0-63"},
              {"5,1", 0x22, "1,5"},
              {"1,1", 0x2, "1"},
              {"2-2", 0x4, "2"},
              {"0,2,4-5,7-9", 0x3b5, "0,2,4-5,7-9"},
              {" 3 ", 0x8, "3"}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        cr_expect_eq(uo_parse_d(&uo_nodes, ok[i].t, &v), 0, "\"%s\" rejected", ok[i].t);
        cr_expect_eq((unsigned long long)v, ok[i].mask, "\"%s\" gave %llx", ok[i].t, (unsigned long long)v);
        char buf[256];
        umi_option_format(&uo_nodes, (long long)ok[i].mask, NULL, buf, sizeof buf);
        cr_expect_str_eq(buf, ok[i].canon);
    }
    const char *bad[] = {"", ",", "1,", ",1", "1,,2", "3-1", "64", "0-64", "100", "a", "1-",
                         "-1", "1--2", "1-2-3", "1 2", "1;2", "0x1", "1,a", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_eq(uo_parse_d(&uo_nodes, bad[i], &v), -1, "\"%s\" accepted", bad[i]);
    char acc[128];
    umi_option_accepted(&uo_nodes, acc, sizeof acc);
    cr_expect_str_eq(acc, "a list of NUMA nodes 0..63 (like 0-3,6)");
}

Test(options_parse, integers) {
    long long v;
    const struct {
        const char *t;
        long long v;
    } ok[] = {{"0", 0}, {"-100", -100}, {"+7", 7}, {"1000", 1000}, {" 12 ", 12}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        cr_expect_eq(uo_parse_d(&uo_int, ok[i].t, &v), 0, "%s", ok[i].t);
        cr_expect_eq(v, ok[i].v);
    }
    const char *bad[] = {"", "-101", "1001", "1e3", "12a", "--1", "+", "-",
                         "99999999999999999999", "-9223372036854775809"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_eq(uo_parse_d(&uo_int, bad[i], &v), -1, "\"%s\" accepted", bad[i]);
    const um_option_desc full = {"UMALLOC_TEST_FULL", UM_OT_INT, 0, LLONG_MIN, LLONG_MAX, NULL, "x"};
    cr_expect_eq(uo_parse_d(&full, "-9223372036854775808", &v), 0);
    cr_expect_eq(v, LLONG_MIN);
    cr_expect_eq(uo_parse_d(&full, "9223372036854775807", &v), 0);
    cr_expect_eq(v, LLONG_MAX);
    cr_expect_eq(uo_parse_d(&full, "9223372036854775808", &v), -1);
}

Test(options_parse, strings) {
    const um_option_desc *d = &umi_option_table[UM_OPT_STATS_FILE];
    char str[UM_OPTION_TEXT_MAX];
    long long v;
    const char *ok[] = {"", "/tmp/x.%p", "stats.txt", "a b/c d", "100%%", "/tmp/ünï",
                        " leading and trailing spaces are kept "};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        cr_expect_eq(umi_option_parse_desc(d, ok[i], strlen(ok[i]), &v, str, sizeof str), 0, "\"%s\"", ok[i]);
        cr_expect_str_eq(str, ok[i]);
        cr_expect_eq(v, (long long)strlen(ok[i]));
    }
    static char longest[UM_OPTION_TEXT_MAX], toolong[UM_OPTION_TEXT_MAX + 1];
    memset(longest, 'a', UM_OPTION_TEXT_MAX - 1);
    memset(toolong, 'a', UM_OPTION_TEXT_MAX);
    cr_expect_eq(umi_option_parse_desc(d, longest, strlen(longest), &v, str, sizeof str), 0);
    cr_expect_eq(strlen(str), UM_OPTION_TEXT_MAX - 1);
    const char *bad[] = {toolong, "a\nb", "tab\there", "\x7f", "/tmp/x.%d", "100%", "%",
                         "/tmp/dir/", "/"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_eq(umi_option_parse_desc(d, bad[i], strlen(bad[i]), &v, str, sizeof str), -1,
                     "\"%.40s\" accepted", bad[i]);
    /* Text that is not NUL-terminated: only len bytes count. */
    cr_expect_eq(umi_option_parse_desc(d, "abc/", 3, &v, str, sizeof str), 0);
    cr_expect_str_eq(str, "abc");
}

Test(options_parse, formats_parse_back) {
    const um_option_desc *d = &umi_option_table[UM_OPT_LARGE_THRESHOLD];
    const struct {
        long long v;
        const char *t;
    } sizes[] = {{4096, "4KiB"}, {65536, "64KiB"}, {100000, "100000"}, {1 << 20, "1MiB"},
                 {3LL << 30, "3GiB"}, {1536, "1536"}, {0, "0"}, {5120, "5KiB"}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        char buf[32];
        umi_option_format(d, sizes[i].v, NULL, buf, sizeof buf);
        cr_expect_str_eq(buf, sizes[i].t);
        long long v;
        cr_expect_eq(uo_parse_d(&uo_wide_size, buf, &v), 0);
        cr_expect_eq(v, sizes[i].v);
    }
    char buf[8];
    cr_expect_eq(umi_option_format(d, 4096, NULL, buf, 3), 2); /* cut, NUL-terminated */
    cr_expect_str_eq(buf, "4K");
}

Test(options_parse, find_and_suggest) {
    const um_option_desc *T = umi_option_table;
    cr_expect(umi_option_find("UMALLOC_VERBOSE", 15) == &T[UM_OPT_VERBOSE]);
    cr_expect(umi_option_find("verbose", 7) == &T[UM_OPT_VERBOSE]);
    cr_expect(umi_option_find("umalloc_purge_delay_ms", 22) == &T[UM_OPT_PURGE_DELAY_MS]);
    cr_expect_null(umi_option_find("VERBOS", 6));
    cr_expect_null(umi_option_find("UMALLOC_", 8));
    cr_expect_null(umi_option_find(NULL, 0));
    const struct {
        const char *typo;
        um_option_id want;
    } s[] = {{"UMALLOC_PURGE_DELAY", UM_OPT_PURGE_DELAY_MS},
             {"UMALLOC_VERBOS", UM_OPT_VERBOSE},
             {"UMALLOC_verbose", UM_OPT_VERBOSE},
             {"UMALLOC_VEBROSE", UM_OPT_VERBOSE},
             {"UMALLOC_HEPL", UM_OPT_HELP},
             {"UMALLOC_LARGE_TRESHOLD", UM_OPT_LARGE_THRESHOLD},
             {"UMALLOC_LARGE", UM_OPT_LARGE_THRESHOLD},
             {"UMALLOC_STATS_FROMAT", UM_OPT_STATS_FORMAT},
             {"UMALLOC_STAT_FILE", UM_OPT_STATS_FILE},
             {"UMALLOC_STATS_AT_EXITT", UM_OPT_STATS_AT_EXIT},
             {"UMALLOC_PURGE_DELAY_MS_", UM_OPT_PURGE_DELAY_MS}};
    for (size_t i = 0; i < sizeof s / sizeof *s; i++) {
        const um_option_desc *g = umi_option_suggest(s[i].typo, strlen(s[i].typo));
        cr_expect(g == &T[s[i].want], "%s: suggested %s", s[i].typo, g ? g->name : "nothing");
    }
    const char *none[] = {"UMALLOC_XYZZY", "UMALLOC_", "UMALLOC_A", "UMALLOC_COMPLETELY_DIFFERENT_THING"};
    for (size_t i = 0; i < sizeof none / sizeof *none; i++) {
        const um_option_desc *g = umi_option_suggest(none[i], strlen(none[i]));
        cr_expect_null(g, "%s: suggested %s", none[i], g ? g->name : "");
    }
    static char huge[300];
    memset(huge, 'V', sizeof huge - 1);
    cr_expect_null(umi_option_suggest(huge, strlen(huge)));
}

/* ---- options_load --------------------------------------------------------------------------- */

Test(options_load, good_values_are_taken_silently) {
    char *env[] = {"PATH=/bin", "UMALLOC_PURGE_DELAY_MS=2s", "UMALLOC_LARGE_THRESHOLD=64K",
                   "UMALLOC_STATS_SIGNAL=USR2", "UMALLOC_STATS_AT_EXIT=yes",
                   "UMALLOC_STATS_FILE=/tmp/s.%p", "UMALLOC_STATS_FORMAT=json", "OTHER=1", NULL};
    const char *out = uo_load(env, 0);
    cr_expect_str_empty(out);
    cr_expect_eq(umi_option(UM_OPT_PURGE_DELAY_MS), 2000);
    cr_expect_eq(umi_option(UM_OPT_LARGE_THRESHOLD), 65536);
    cr_expect_eq(umi_option(UM_OPT_STATS_SIGNAL), SIGUSR2);
    cr_expect_eq(umi_option(UM_OPT_STATS_AT_EXIT), 1);
    cr_expect_str_eq(umi_option_str(UM_OPT_STATS_FILE), "/tmp/s.%p");
    cr_expect_eq(umi_option(UM_OPT_STATS_FORMAT), UM_STATS_FORMAT_JSON);
    cr_expect_eq(umi_option(UM_OPT_VERBOSE), 0);
    cr_expect_eq(umi_option_source(UM_OPT_PURGE_DELAY_MS), UM_SRC_ENV);
    cr_expect_eq(umi_option_source(UM_OPT_VERBOSE), UM_SRC_DEFAULT);

    /* Loading again resets what is not set any more. */
    char *empty[] = {NULL};
    cr_expect_str_empty(uo_load(empty, 0));
    for (int i = 0; i < UM_OPT__COUNT; i++) {
        cr_expect_eq(umi_option((um_option_id)i), umi_option_table[i].def);
        cr_expect_eq(umi_option_source((um_option_id)i), UM_SRC_DEFAULT);
    }
    cr_expect_str_eq(umi_option_str(UM_OPT_STATS_FILE), "");
}

Test(options_load, a_bad_value_gets_one_line_and_the_default) {
    char *env[] = {"UMALLOC_PURGE_DELAY_MS=abc", NULL};
    const char *out = uo_load(env, 0);
    cr_expect_str_eq(out, "umalloc: UMALLOC_PURGE_DELAY_MS=abc is not valid: expected a duration "
                          "in ms (0..3600000, suffix ms or s); using the default 100\n");
    cr_expect_eq(umi_option(UM_OPT_PURGE_DELAY_MS), 100);
    cr_expect_eq(umi_option_source(UM_OPT_PURGE_DELAY_MS), UM_SRC_REJECTED);

    const struct {
        char *var;
        const char *line;
    } cases[] = {
        {"UMALLOC_LARGE_THRESHOLD=1G",
         "umalloc: UMALLOC_LARGE_THRESHOLD=1G is not valid: expected a size (4KiB..512KiB; bytes, "
         "or suffix K, M, G, KiB, MiB, GiB); using the default 512KiB\n"},
        {"UMALLOC_STATS_FORMAT=xml",
         "umalloc: UMALLOC_STATS_FORMAT=xml is not valid: expected one of text, json; using the "
         "default text\n"},
        {"UMALLOC_STATS_SIGNAL=KILL",
         "umalloc: UMALLOC_STATS_SIGNAL=KILL is not valid: expected a signal name (USR1, SIGUSR2, "
         "RTMIN+1, ...), a number 1..64 but not 9, 19, 32 or 33, or none; using the default USR1\n"},
        {"UMALLOC_STATS_FILE=/tmp/%d",
         "umalloc: UMALLOC_STATS_FILE=/tmp/%d is not valid: expected a file path (at most 4095 "
         "bytes, no control characters, % only in %p or %%, not ending in /); using the default "
         "\"\"\n"},
        {"UMALLOC_VERBOSE=",
         "umalloc: UMALLOC_VERBOSE= is not valid: expected a boolean (1/0, true/false, yes/no, "
         "on/off); using the default 0\n"},
        {"UMALLOC_HELP=a\nb\x1b",
         "umalloc: UMALLOC_HELP=a\\x0ab\\x1b is not valid: expected a boolean (1/0, true/false, "
         "yes/no, on/off); using the default 0\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *e[] = {cases[i].var, NULL};
        cr_expect_str_eq(uo_load(e, 0), cases[i].line);
    }
}

Test(options_load, long_values_are_cut_in_the_message) {
    static char var[9000];
    strcpy(var, "UMALLOC_STATS_FILE=");
    memset(var + strlen(var), 'q', 8000);
    char *env[] = {var, NULL};
    const char *out = uo_load(env, 0);
    cr_expect_eq(uo_lines(out), 1);
    char want[300];
    memset(want, 'q', 200);
    strcpy(want + 200, "... is not valid");
    cr_expect(strstr(out, want) != NULL, "%.300s", out);
    cr_expect_lt(strlen(out), 600);
    cr_expect_str_eq(umi_option_str(UM_OPT_STATS_FILE), "");
}

Test(options_load, unknown_names_get_one_line) {
    char *env[] = {"UMALLOC_PURGE_DELAY=5", NULL};
    cr_expect_str_eq(uo_load(env, 0),
                     "umalloc: UMALLOC_PURGE_DELAY=5 is not a known option: did you mean "
                     "UMALLOC_PURGE_DELAY_MS? (UMALLOC_HELP=1 lists all options); ignored\n");
    char *env2[] = {"UMALLOC_FOOBARBAZ=on", NULL};
    cr_expect_str_eq(uo_load(env2, 0), "umalloc: UMALLOC_FOOBARBAZ=on is not a known option "
                                       "(UMALLOC_HELP=1 lists all options); ignored\n");
    /* Not NAME=VALUE, or not ours: nothing. */
    char *env3[] = {"UMALLOC_NOEQUALS", "umalloc_verbose=1", "XUMALLOC_VERBOSE=1", "UMALLO=1", NULL};
    cr_expect_str_empty(uo_load(env3, 0));
    cr_expect_eq(umi_option(UM_OPT_VERBOSE), 0);
}

Test(options_load, first_definition_wins) {
    char *env[] = {"UMALLOC_PURGE_DELAY_MS=5", "UMALLOC_PURGE_DELAY_MS=abc",
                   "UMALLOC_PURGE_DELAY_MS=7", NULL};
    cr_expect_str_empty(uo_load(env, 0));
    cr_expect_eq(umi_option(UM_OPT_PURGE_DELAY_MS), 5);
    char *env2[] = {"UMALLOC_PURGE_DELAY_MS=abc", "UMALLOC_PURGE_DELAY_MS=7", NULL};
    cr_expect_eq(uo_lines(uo_load(env2, 0)), 1);
    cr_expect_eq(umi_option(UM_OPT_PURGE_DELAY_MS), 100);
}

Test(options_load, secure_processes_ignore_everything_silently) {
    char *env[] = {"UMALLOC_VERBOSE=1", "UMALLOC_HELP=1", "UMALLOC_PURGE_DELAY_MS=abc",
                   "UMALLOC_LARGE_THRESHOLD=64K", "UMALLOC_TYPO=1", NULL};
    cr_expect_str_empty(uo_load(env, 1));
    for (int i = 0; i < UM_OPT__COUNT; i++) {
        cr_expect_eq(umi_option((um_option_id)i), umi_option_table[i].def, "%s",
                     umi_option_table[i].name);
        cr_expect_eq(umi_option_source((um_option_id)i), UM_SRC_DEFAULT);
    }
    /* These tests run as a normal process. */
    cr_expect_eq(umi_options_secure(), 0);
}

Test(options_load, help_lists_every_option) {
    char *env[] = {"UMALLOC_HELP=1", NULL};
    const char *out = uo_load(env, 0);
    cr_expect(strstr(out, "umalloc " UMALLOC_VERSION) != NULL);
    cr_expect_eq(uo_lines(out), 1 + 3 * UM_OPT__COUNT, "%s", out);
    for (int i = 0; i < UM_OPT__COUNT; i++) {
        const um_option_desc *d = &umi_option_table[i];
        char want[256], def[128], acc[512];
        umi_option_format(d, d->def, d->type == UM_OT_STRING ? d->extra : NULL, def, sizeof def);
        if (!def[0]) strcpy(def, "\"\"");
        const char *type = d->type == UM_OT_BOOL       ? "bool"
                           : d->type == UM_OT_SIZE     ? "size"
                           : d->type == UM_OT_DURATION ? "duration"
                           : d->type == UM_OT_ENUM     ? "enum"
                           : d->type == UM_OT_SIGNAL   ? "signal"
                           : d->type == UM_OT_STRING   ? "string"
                           : d->type == UM_OT_INT      ? "int"
                                                       : "nodes";
        snprintf(want, sizeof want, "umalloc:   %-26s %-9s default %s\n", d->name, type, def);
        cr_expect(strstr(out, want) != NULL, "no \"%s\" in HELP", want);
        snprintf(want, sizeof want, "umalloc:       %s\n", d->help);
        cr_expect(strstr(out, want) != NULL, "no \"%s\" in HELP", want);
        umi_option_accepted(d, acc, sizeof acc);
        snprintf(want, sizeof want, "umalloc:       accepted: %.200s\n", acc);
        cr_expect(strstr(out, want) != NULL, "no \"%s\" in HELP", want);
    }
}

Test(options_load, verbose_shows_values_and_sources) {
    char *env[] = {"UMALLOC_VERBOSE=on", "UMALLOC_LARGE_THRESHOLD=128K", "UMALLOC_STATS_FORMAT=yaml",
                   "UMALLOC_STATS_FILE=/var/tmp/st.%p", NULL};
    const char *out = uo_load(env, 0);
    cr_expect(strstr(out, "umalloc: UMALLOC_STATS_FORMAT=yaml is not valid") != NULL, "%s", out);
    cr_expect(strstr(out, "umalloc " UMALLOC_VERSION " (pid ") != NULL, "%s", out);
    const char *lines[] = {
        "umalloc:   UMALLOC_VERBOSE=1 (environment)\n",
        "umalloc:   UMALLOC_HELP=0 (default)\n",
        "umalloc:   UMALLOC_PURGE_DELAY_MS=100 (default)\n",
        "umalloc:   UMALLOC_LARGE_THRESHOLD=128KiB (environment)\n",
        "umalloc:   UMALLOC_STATS_SIGNAL=USR1 (default)\n",
        "umalloc:   UMALLOC_STATS_AT_EXIT=0 (default)\n",
        "umalloc:   UMALLOC_STATS_FILE=/var/tmp/st.%p (environment)\n",
        "umalloc:   UMALLOC_STATS_FORMAT=text (default; the environment's value was not valid)\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
        cr_expect(strstr(out, lines[i]) != NULL, "no \"%s\" in:\n%s", lines[i], out);
    cr_expect_eq(uo_lines(out), 2 + UM_OPT__COUNT, "%s", out);
}

Test(options_load, preserves_errno) {
    char *env[] = {"UMALLOC_PURGE_DELAY_MS=bad", "UMALLOC_VERBOSE=1", NULL};
    errno = 4321;
    uo_load(env, 0);
    cr_expect_eq(errno, 4321);
}

/* environ NULL (too early in the process): /proc/self/environ is read instead, and gives what
 * reading environ would have (we change no UMALLOC_ variable in this process). */
Test(options_load, environ_null_reads_proc_self_environ) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* The first initialisation in this process (unless the library initialised itself
         * already, in which case this only re-reads the values): with environ NULL, it must
         * read /proc/self/environ. */
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 2);
        environ = NULL;
        umi_options_init();
        long long got[UM_OPT__COUNT];
        for (int i = 0; i < UM_OPT__COUNT; i++) got[i] = umi_option((um_option_id)i);
        _exit(write(fds[1], got, sizeof got) == (ssize_t)sizeof got ? 0 : 1);
    }
    close(fds[1]);
    long long got[UM_OPT__COUNT];
    ssize_t n = read(fds[0], got, sizeof got);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %x", status);
    cr_assert_eq(n, (ssize_t)sizeof got);
    /* What reading environ gives (this process changed no UMALLOC_ variable). */
    uo_capture_begin();
    umi_options_load(environ, 0);
    uo_capture_end();
    for (int i = 0; i < UM_OPT__COUNT; i++)
        cr_expect_eq(got[i], umi_option((um_option_id)i), "%s", umi_option_table[i].name);
}

/* ---- options_api ---------------------------------------------------------------------------- */

Test(options_api, get_by_name) {
    char *env[] = {"UMALLOC_PURGE_DELAY_MS=250", "UMALLOC_STATS_FILE=/tmp/a.%p",
                   "UMALLOC_STATS_FORMAT=json", "UMALLOC_STATS_SIGNAL=none", NULL};
    cr_expect_str_empty(uo_load(env, 0));
    long long v = -1;
    cr_expect_eq(um_option_get("UMALLOC_PURGE_DELAY_MS", &v), 0);
    cr_expect_eq(v, 250);
    cr_expect_eq(um_option_get("purge_delay_ms", &v), 0);
    cr_expect_eq(v, 250);
    cr_expect_eq(um_option_get("LARGE_THRESHOLD", &v), 0);
    cr_expect_eq(v, 524288);
    cr_expect_eq(um_option_get("UMALLOC_STATS_FORMAT", &v), 0);
    cr_expect_eq(v, 1);
    cr_expect_eq(um_option_get("UMALLOC_STATS_SIGNAL", &v), 0);
    cr_expect_eq(v, 0);
    cr_expect_eq(um_option_get("UMALLOC_STATS_FILE", &v), 0);
    cr_expect_eq(v, (long long)strlen("/tmp/a.%p"));
    errno = 0;
    cr_expect_eq(um_option_get("UMALLOC_NOPE", &v), -1);
    cr_expect_eq(errno, ENOENT);
    cr_expect_eq(um_option_get(NULL, &v), -1);
    cr_expect_eq(um_option_get("", &v), -1);
    cr_expect_eq(um_option_get("UMALLOC_VERBOSE", NULL), 0);
}

Test(options_api, get_string) {
    char *env[] = {"UMALLOC_PURGE_DELAY_MS=3s", "UMALLOC_STATS_FILE=/tmp/a.%p",
                   "UMALLOC_LARGE_THRESHOLD=65536", NULL};
    cr_expect_str_empty(uo_load(env, 0));
    char buf[UM_OPTION_TEXT_MAX];
    const struct {
        const char *name, *text;
    } c[] = {{"UMALLOC_PURGE_DELAY_MS", "3000"},   {"UMALLOC_LARGE_THRESHOLD", "64KiB"},
             {"UMALLOC_STATS_FILE", "/tmp/a.%p"}, {"stats_signal", "USR1"},
             {"UMALLOC_STATS_FORMAT", "text"},    {"UMALLOC_VERBOSE", "0"}};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        cr_expect_eq(um_option_get_string(c[i].name, buf, sizeof buf), 0);
        cr_expect_str_eq(buf, c[i].text);
    }
    errno = 0;
    cr_expect_eq(um_option_get_string("UMALLOC_STATS_FILE", buf, 5), -1);
    cr_expect_eq(errno, ERANGE);
    cr_expect_str_eq(buf, "/tmp");
    cr_expect_eq(um_option_get_string("UMALLOC_STATS_FILE", buf, 10), 0);
    cr_expect_eq(um_option_get_string("UMALLOC_STATS_FILE", buf, 0), -1);
    errno = 0;
    cr_expect_eq(um_option_get_string("UMALLOC_NOPE", buf, sizeof buf), -1);
    cr_expect_eq(errno, ENOENT);
}

static void *uo_get_thread(void *arg) {
    (void)arg;
    long long sum = 0;
    for (int i = 0; i < 1000; i++) {
        long long v;
        if (um_option_get("UMALLOC_LARGE_THRESHOLD", &v) != 0) return (void *)1;
        sum += v;
        char b[64];
        if (um_option_get_string("UMALLOC_STATS_FORMAT", b, sizeof b) != 0) return (void *)1;
    }
    return sum == 1000LL * umi_option(UM_OPT_LARGE_THRESHOLD) ? NULL : (void *)2;
}

Test(options_api, concurrent_first_use) {
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, uo_get_thread, NULL);
    for (int i = 0; i < 8; i++) {
        void *r;
        pthread_join(t[i], &r);
        cr_expect_null(r);
    }
    /* Init is idempotent. */
    long long before = umi_option(UM_OPT_PURGE_DELAY_MS);
    umi_options_init();
    umi_options_init();
    cr_expect_eq(umi_option(UM_OPT_PURGE_DELAY_MS), before);
}
