/* System tests, part B: the small programs of test/progs/ run under LD_PRELOAD=libumalloc.so.
 * Each program checks itself and exits 0 on success; here we check the exit status, the lines
 * it must print, and that umalloc printed no warning for a program that does nothing wrong. */
#include "sys_util.h"

#include <elf.h>

/* Runs build/test/progs/NAME under the preload; fails the test unless it exits 0. */
static void run_prog(const char *name, double timeout, su_result *r) {
    char *prog = su_prog(name);
    const char *argv[] = {prog, NULL};
    su_opts o = {.argv = argv, .preload = 1, .timeout = timeout};
    su_run(&o, r);
    fprintf(stderr, "[%s] %s in %.1f s (%.1f s CPU)\n", name, su_status(r), r->secs, r->cpu);
    SU_ASSERT_OK(r, name);
    free(prog);
}

/* A correct program must not make umalloc complain. */
static void assert_no_umalloc_warning(const su_result *r, const char *name) {
    cr_assert(su_umalloc_message(r->err) == NULL,
              "%s: umalloc printed something on stderr for a correct program:\n%s", name,
              su_tail(r->err, 3000));
}

static void assert_has(const char *text, const char *needle, const char *name, const char *what) {
    cr_assert(strstr(text, needle) != NULL, "%s: %s lacks \"%s\":\n%s", name, what, needle,
              su_tail(text, 3000));
}

/* The library's mapping spans less than 2 MiB. The kernel places a mapping of 2 MiB or more at
 * a 2 MiB boundary, and the thread stacks glibc maps below the libraries then lay so that each
 * munmap of one flushed its TLB entries page by page (core/segmap.c, docs/bench-notes.md). Big
 * tables belong in mappings of their own. */
Test(preload, library_maps_less_than_2_mib, .timeout = 30) {
    char *path = su_fmt("%s/build/libumalloc.so", su_root());
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
    Elf64_Ehdr eh;
    cr_assert(pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0, "%s: not ELF", path);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        cr_assert(pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * eh.e_phentsize)) == (ssize_t)sizeof ph);
        if (ph.p_type != PT_LOAD) continue;
        if (ph.p_vaddr < lo) lo = ph.p_vaddr;
        if (ph.p_vaddr + ph.p_memsz > hi) hi = ph.p_vaddr + ph.p_memsz;
    }
    close(fd);
    cr_assert(hi > lo, "%s: no PT_LOAD segment", path);
    fprintf(stderr, "[library span] %s maps %.2f MiB\n", path, (double)(hi - lo) / (1 << 20));
    cr_assert(hi - lo < ((uint64_t)2 << 20), "%s maps %llu bytes (text, data and .bss), 2 MiB or more",
              path, (unsigned long long)(hi - lo));
    free(path);
}

/* The preload works at all: a plain tool runs and has the library mapped. */
Test(preload, smoke_grep_maps, .timeout = 30) {
    const char *lib = su_maps_name();
    const char *argv[] = {"grep", "-c", lib, "/proc/self/maps", NULL};
    su_opts o = {.argv = argv, .preload = 1, .timeout = 20};
    su_result r;
    su_run(&o, &r);
    SU_ASSERT_OK(&r, "grep -c LIB /proc/self/maps");
    cr_assert(atoi(r.out) >= 1, "grep under LD_PRELOAD=%s does not map %s: %s", su_preload(), lib,
              r.out);
    assert_no_umalloc_warning(&r, "grep");
    su_result_free(&r);

    /* A pipeline in a shell: fork/exec/pipes of preloaded processes. */
    const char *argv2[] = {"sh", "-c",
                           "seq 1 20000 | sort -rn | head -3 | tr '\\n' ' '; ls / > /dev/null && "
                           "echo done",
                           NULL};
    su_opts o2 = {.argv = argv2, .preload = 1, .timeout = 20};
    su_run(&o2, &r);
    SU_ASSERT_OK(&r, "sh pipeline");
    cr_assert_str_eq(r.out, "20000 19999 19998 done\n", "sh pipeline output: %s", r.out);
    assert_no_umalloc_warning(&r, "sh pipeline");
    su_result_free(&r);
}

/* The programs refuse to pass without the library: their um_owns gate can fail. */
Test(preload, progs_detect_missing_preload, .timeout = 30) {
    char *prog = su_prog("preload_basic");
    const char *argv[] = {prog, NULL};
    su_opts o = {.argv = argv, .preload = 0, .timeout = 20};
    su_result r;
    su_run(&o, &r);
    cr_assert(r.exited && r.code == 2, "preload_basic without LD_PRELOAD: %s, want exit status 2",
              su_status(&r));
    assert_has(r.err, "not running under", "preload_basic (no preload)", "stderr");
    su_result_free(&r);
    free(prog);
}

Test(preload, basic, .timeout = 120) {
    su_result r;
    run_prog("preload_basic", 100, &r);
    assert_has(r.out, "preload_basic: all checks passed", "preload_basic", "stdout");
    cr_assert_eq(su_count(r.out, "ok: "), 9, "preload_basic: want 9 \"ok:\" lines:\n%s", r.out);
    assert_has(r.err, "--- malloc_stats output", "preload_basic", "stderr");
    cr_assert(strstr(r.err, "FAIL") == NULL, "preload_basic: %s", r.err);
    su_result_free(&r);
}

/* Start-up reads no file where memory can come from one NUMA node only: the first malloc asks
 * get_mempolicy instead of /sys (a process's first sysfs open is slow, docs/numa.md). The
 * program traps and counts every open from its first malloc on; where the check does not
 * apply (several nodes allowed) it says why, and the test is skipped loudly. */
Test(preload, startup_opens_no_file_on_one_node, .timeout = 30) {
    char *prog = su_prog("preload_startup");
    const char *argv[] = {prog, NULL};
    const char *env[] = {"UMALLOC_NUMA_POLICY", "UMALLOC_NUMA_NODES", NULL};
    su_opts o = {.argv = argv, .env = env, .preload = 1, .timeout = 20};
    su_result r;
    su_run(&o, &r);
    if (r.exited && r.code == 77) {
        fprintf(stderr, "[preload_startup] SKIPPED: %s", r.err);
        cr_skip_test("preload_startup does not apply here: %s", r.err);
    }
    SU_ASSERT_OK(&r, "preload_startup");
    assert_has(r.out, "the first malloc opened no file", "preload_startup", "stdout");
    su_result_free(&r);
    free(prog);
}

/* The library's .bss that every process writes is faulted in at load, in one call: the first
 * malloc makes no page of the .bss resident (preload/start.c). */
Test(preload, first_malloc_faults_in_no_bss_page, .timeout = 30) {
    char *prog = su_prog("preload_bss");
    const char *argv[] = {prog, NULL};
    /* the defaults: a reservation, huge pages or a NUMA policy set up tables of their own */
    const char *env[] = {"UMALLOC_RESERVE", "UMALLOC_HUGEPAGES", "UMALLOC_NUMA_POLICY", "UMALLOC_NUMA_NODES", NULL};
    su_opts o = {.argv = argv, .env = env, .preload = 1, .timeout = 20};
    su_result r;
    su_run(&o, &r);
    if (r.exited && r.code == 77) {
        fprintf(stderr, "[preload_bss] SKIPPED: %s", r.err);
        cr_skip_test("preload_bss does not apply here: %s", r.err);
    }
    SU_ASSERT_OK(&r, "preload_bss");
    assert_has(r.out, ", 0 made resident by it", "preload_bss", "stdout");
    su_result_free(&r);
    free(prog);
}

/* A small threaded program makes umalloc call neither libc's clock_gettime nor its
 * sched_getaffinity: each would map 64 KiB of libc text that nothing else in such a process
 * runs (os/clock.c). The program defines both, counting the calls the library makes. */
Test(preload, no_libc_clock_or_affinity_calls, .timeout = 30) {
    char *prog = su_prog("preload_libc_text");
    const char *argv[] = {prog, NULL};
    su_opts o = {.argv = argv, .preload = 1, .timeout = 20};
    su_result r;
    su_run(&o, &r);
    cr_assert(r.exited && r.code != 2, "preload_libc_text did not run under the library: %s", r.err);
    assert_has(r.out, "clock_gettime 0 sched_getaffinity 0", "preload_libc_text", "stdout");
    SU_ASSERT_OK(&r, "preload_libc_text");
    su_result_free(&r);
    free(prog);
}

/* C++'s operators new and delete are the library's (preload/cxx.c), and out of memory still
 * calls the new-handler and throws std::bad_alloc. */
Test(preload, cxx_operators_new_and_delete, .timeout = 60) {
    su_result r;
    run_prog("preload_cxx", 50, &r);
    assert_has(r.out, "preload_cxx: all checks passed", "preload_cxx", "stdout");
    cr_assert_eq(su_count(r.out, "ok: "), 4, "preload_cxx: want 4 \"ok:\" lines:\n%s", r.out);
    assert_no_umalloc_warning(&r, "preload_cxx");
    su_result_free(&r);
}

Test(preload, foreign_pointers, .timeout = 120) {
    su_result r;
    run_prog("preload_foreign", 100, &r);
    /* One message per bad free: stack, static, interior (small and huge), two double frees. */
    cr_assert_eq(su_count(r.out, "ok: survived free("), 6,
                 "preload_foreign: want 6 reported bad frees:\n%s\n%s", r.out, r.err);
    cr_assert(su_count(r.err, "umalloc said:") == 6 && strstr(r.err, "(nothing)") == NULL,
              "preload_foreign: every bad free must print a line mentioning umalloc:\n%s", r.err);
    assert_has(r.out, "ok: 100000 blocks allocated, verified and freed", "preload_foreign",
               "stdout");
    assert_has(r.out, "preload_foreign: all checks passed", "preload_foreign", "stdout");
    su_result_free(&r);
}

Test(preload, tls_and_key_destructors, .timeout = 180) {
    su_result r;
    run_prog("preload_tls_dtor", 150, &r);
    fprintf(stderr, "%s", r.out);
    assert_has(r.out, "after 400 threads:", "preload_tls_dtor", "stdout");
    assert_has(r.out, "preload_tls_dtor: all checks passed", "preload_tls_dtor", "stdout");
    assert_no_umalloc_warning(&r, "preload_tls_dtor");
    su_result_free(&r);
}

Test(preload, fork_with_threads, .timeout = 180) {
    su_result r;
    run_prog("preload_fork", 150, &r);
    fprintf(stderr, "%s", r.out);
    assert_has(r.out, "forks 50: exited 0: 50, failed: 0, hung: 0", "preload_fork", "stdout");
    assert_has(r.out, "preload_fork: all checks passed", "preload_fork", "stdout");
    assert_no_umalloc_warning(&r, "preload_fork");
    su_result_free(&r);
}

/* fork() from a signal handler that interrupted malloc or free, in a single-threaded program
 * (glibc's tst-mallocfork2): the interrupted slow path may hold one of umalloc's locks, and
 * fork's prepare handler took them all, so it waited for itself forever (as jemalloc and
 * tcmalloc do; glibc and mimalloc go on). */
Test(preload, fork_in_a_signal_handler_inside_malloc, .timeout = 120) {
    su_result r;
    run_prog("preload_signal_fork", 90, &r);
    fprintf(stderr, "%s", r.out);
    assert_has(r.out, "blocks intact", "preload_signal_fork", "stdout");
    assert_no_umalloc_warning(&r, "preload_signal_fork");
    su_result_free(&r);
}

Test(preload, fork_beside_getline_and_fflush_all, .timeout = 60) {
    su_result r;
    run_prog("preload_fork_stdio", 40, &r);
    fprintf(stderr, "%s", r.out);
    assert_has(r.out, "forks beside getline and fflush(NULL)", "preload_fork_stdio", "stdout");
    assert_no_umalloc_warning(&r, "preload_fork_stdio");
    su_result_free(&r);
}

Test(preload, constructors_and_destructors, .timeout = 60) {
    su_result r;
    run_prog("preload_early", 30, &r);
    cr_assert_str_eq(r.out,
                     "constructor(101) ok\nconstructor ok\nmain ok\natexit ok\ndestructor ok\n"
                     "destructor(101) ok\n",
                     "preload_early: stages missing or out of order:\n%s\nstderr:\n%s", r.out,
                     r.err);
    assert_no_umalloc_warning(&r, "preload_early");
    su_result_free(&r);
}

/* mlockall(MCL_CURRENT) populates every readable mapping: umalloc's reservations must not be
 * (the test's timeout is the check; a readable 1 TiB region took minutes). Root runs it for
 * real; elsewhere the program may not be allowed to lock, and says SKIP loudly. */
Test(preload, mlockall_program_runs, .timeout = 60) {
    su_result r;
    run_prog("preload_mlockall", 40, &r);
    if (strstr(r.out, "SKIP") != NULL) {
        fprintf(stderr, "[preload_mlockall] SKIPPED: %s", r.out);
        cr_skip_test("mlockall not permitted here: %s", r.out);
    }
    assert_has(r.out, "preload_mlockall: all checks passed", "preload_mlockall", "stdout");
    cr_assert_lt(r.secs, 20.0, "preload_mlockall took %.1f s", r.secs);
    assert_no_umalloc_warning(&r, "preload_mlockall");
    su_result_free(&r);
}

Test(preload, threads_random_ops, .timeout = 240) {
    su_result r;
    run_prog("preload_threads", 200, &r);
    fprintf(stderr, "%s", r.out);
    assert_has(r.out, "= 1600000 ops", "preload_threads", "stdout");
    assert_has(r.out, "preload_threads: all checks passed", "preload_threads", "stdout");
    assert_no_umalloc_warning(&r, "preload_threads");
    su_result_free(&r);
}
