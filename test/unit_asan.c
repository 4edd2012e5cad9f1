/* ASan sees umalloc's blocks (base/sanitize.h): in the ASan build a use after free, a double free
 * and a one-byte overflow of a umalloc block are each reported by ASan. Each misuse runs in a
 * forked child (ASan stops the process at the first report), whose stderr must hold the report.
 * Only build/test/unit-asan can check this; the other builds skip these tests, saying so. */
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"

#include <criterion/criterion.h>
#include <sys/wait.h>

#include "test_util.h"

#define SKIP_UNLESS_ASAN(name)                                                                             \
    do {                                                                                               \
        if (!tu_is_asan()) {                                                                           \
            fprintf(stderr, "[SKIP] asan::%s: not the ASan build (%s)\n", name, UM_TEST_VARIANT);    \
            cr_skip_test("the %s build has no ASan: only build/test/unit-asan checks that ASan reports " \
                         "misuse of umalloc blocks", UM_TEST_VARIANT);                                 \
        }                                                                                              \
    } while (0)

/* Runs misuse(arg) in a child with stderr to a file; returns what it printed (malloc'd) and its
 * wait status. A child that survives says "survived" and exits 0. */
static char *run_child(void (*misuse)(size_t), size_t arg, int *status) {
    char path[] = "/tmp/um-asan-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(fd, 2);
        misuse(arg);
        fprintf(stderr, "survived\n");
        _exit(0);
    }
    cr_assert_eq(waitpid(pid, status, 0), pid);
    off_t len = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)len + 1);
    cr_assert_eq(pread(fd, out, (size_t)len, 0), len);
    close(fd);
    return out;
}

/* The child was stopped by ASan with a report of `kind` at address `at` (0: any). */
static void expect_report(void (*misuse)(size_t), size_t arg, const char *kind, uintptr_t at, const char *what) {
    int st;
    char *out = run_child(misuse, arg, &st);
    cr_expect(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), "%s: the child ran on, no report:\n%s", what, out);
    char want[128];
    snprintf(want, sizeof want, "ERROR: AddressSanitizer: %s on address", kind);
    cr_expect_not_null(strstr(out, want), "%s: no \"%s\" in the child's stderr:\n%s", what, want, out);
    if (at != 0) {
        char addr[64];
        snprintf(addr, sizeof addr, "at 0x%012lx thread", (unsigned long)at);
        cr_expect_not_null(strstr(out, addr), "%s: the report is not about %s:\n%s", what, addr, out);
    }
    const char *line = strstr(out, "ERROR: AddressSanitizer");
    if (line) cr_log_info("%s: %.*s", what, (int)strcspn(line, "\n"), line);
    free(out);
}

static volatile uintptr_t bad_address; /* where the child touched: set before the access */

static void use_after_free(size_t size) {
    char *p = um_malloc(size);
    memset(p, 1, size);
    um_free(p);
    bad_address = (uintptr_t)(p + size / 2);
    (void)*(volatile char *)bad_address;
}

Test(asan, use_after_free_is_reported) {
    SKIP_UNLESS_ASAN("use_after_free_is_reported");
    const size_t sizes[] = {16, 64, 1000, 20000, 300000, 2 * TU_MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "read after free of a %zu-byte block", sizes[i]);
        expect_report(use_after_free, sizes[i], "use-after-poison", 0, what);
    }
}

static void double_free(size_t size) {
    void *keep = um_malloc(size), *p = um_malloc(size);
    um_free(p);
    um_free(p);
    um_free(keep);
}

/* umalloc says "double free of" in one line, then touches the freed (poisoned) block, so that ASan
 * reports it too, with the stack of the second free, as it would a double free of its own blocks. */
Test(asan, double_free_is_reported) {
    SKIP_UNLESS_ASAN("double_free_is_reported");
    const size_t sizes[] = {16, 100, 5000, 40000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "double free of a %zu-byte block", sizes[i]);
        int st;
        char *out = run_child(double_free, sizes[i], &st);
        cr_expect_not_null(strstr(out, "umalloc: double free of"), "%s: umalloc's line is missing:\n%s", what, out);
        free(out);
        expect_report(double_free, sizes[i], "use-after-poison", 0, what);
    }
}

/* One byte past the request, into the slack the size class leaves: a block of each kind. */
enum { OVER_MALLOC, OVER_CALLOC, OVER_ALIGNED, OVER_REALLOC_SHRUNK, OVER_HUGE, OVER_FRESH_NEIGHBOUR };
static void overflow_by_one(size_t how) {
    char *p = NULL;
    size_t n = 40; /* a 48-byte block */
    switch (how) {
    case OVER_MALLOC: p = um_malloc(n); break;
    case OVER_CALLOC: p = um_calloc(1, n); break;
    case OVER_ALIGNED: p = um_aligned_alloc(64, n); break;
    case OVER_REALLOC_SHRUNK: p = um_realloc(um_malloc(1000), n = 600); break; /* kept in place */
    case OVER_HUGE: p = um_malloc(n = 3 * TU_MiB + 5); break;
    case OVER_FRESH_NEIGHBOUR: p = um_malloc(n = 48); break; /* no slack: the next block is not handed out yet */
    }
    bad_address = (uintptr_t)(p + n);
    *(volatile char *)bad_address = 1;
}

Test(asan, one_byte_overflow_is_reported) {
    SKIP_UNLESS_ASAN("one_byte_overflow_is_reported");
    static const char *const what[] = {"malloc(40)", "calloc(1, 40)", "aligned_alloc(64, 40)", "realloc(1000 -> 600)",
                                       "malloc(3 MiB + 5)", "malloc(48), next block never handed out"};
    for (size_t i = 0; i <= OVER_FRESH_NEIGHBOUR; i++) expect_report(overflow_by_one, i, "use-after-poison", 0, what[i]);
}

/* The other side: a program may use all of malloc_usable_size, and every byte it asked for. */
static void use_usable_size(size_t size) {
    char *p = um_malloc(size);
    memset(p, 2, size);
    size_t n = um_malloc_usable_size(p);
    memset(p, 3, n);
    char *q = um_realloc(p, n + 100); /* copies all n */
    um_free(q);
}

Test(asan, usable_size_is_open) {
    SKIP_UNLESS_ASAN("usable_size_is_open");
    const size_t sizes[] = {1, 40, 1000, 70000, 700000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int st;
        char *out = run_child(use_usable_size, sizes[i], &st);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "survived"),
                  "writing the usable size of a %zu-byte block was reported:\n%s", sizes[i], out);
        free(out);
    }
}
