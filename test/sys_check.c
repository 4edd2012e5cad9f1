/* UMALLOC_CHECK=1 on a real program (test/progs/check_corrupt.c): a use-after-free write over a
 * freed block's link stops the program at exit with one line saying what and where, and an
 * abort; a correct program with threads runs through with nothing said. */
#include <criterion/criterion.h>

#include "sys_util.h"

static void run_check_corrupt_under(const char *lib, const char *mode, su_result *r) {
    char *prog = su_prog("check_corrupt");
    const char *argv[] = {prog, mode, NULL};
    char *path = su_fmt("%s/build/%s", su_root(), lib);
    cr_assert(su_exists(path), "%s does not exist: run `make all secure`", path);
    const char *env[] = {"UMALLOC_CHECK=1", su_fmt("LD_PRELOAD=%s", path), NULL}; /* su_spawn frees LD_PRELOAD entries */
    su_opts o = {.argv = argv, .env = env, .preload = 0, .timeout = 60};
    su_run(&o, r);
    free(path);
    free(prog);
}
static void run_check_corrupt(const char *mode, su_result *r) { run_check_corrupt_under("libumalloc.so", mode, r); }

Test(check_option, finds_a_corrupted_free_list_and_aborts, .timeout = 90) {
    su_result r;
    run_check_corrupt("corrupt", &r);
    cr_assert(r.signaled && r.sig == SIGABRT, "want SIGABRT, got %s; stderr:\n%s", su_status(&r), su_tail(r.err, 2000));
    cr_assert(strstr(r.err, "umalloc: heap check: ") != NULL, "no checker line:\n%s", su_tail(r.err, 2000));
    cr_assert(strstr(r.err, "umalloc: heap check failed (UMALLOC_CHECK=1): aborting") != NULL, "stderr:\n%s", su_tail(r.err, 2000));
    su_result_free(&r);
}

Test(check_option, silent_on_a_correct_threaded_program, .timeout = 120) {
    su_result r;
    run_check_corrupt("clean", &r);
    cr_assert(su_ok(&r), "check_corrupt clean: %s\n%s", su_status(&r), su_tail(r.err, 2000));
    cr_assert(strstr(r.out, "clean run done") != NULL);
    cr_assert(strstr(r.err, "heap check") == NULL, "the checker complained about a correct program:\n%s", su_tail(r.err, 2000));
    su_result_free(&r);
}

/* The secure build's small segments give their last slot to a guard page: the checker must know
 * that layout too. Taken for a broken one, such a segment's pages in use would go uncounted, and
 * the bin queues that hold them would look like loops. */
Test(check_option, silent_on_a_correct_threaded_program_in_the_secure_build, .timeout = 120) {
    su_result r;
    run_check_corrupt_under("libumalloc-secure.so", "clean", &r);
    cr_assert(su_ok(&r), "check_corrupt clean (secure): %s\n%s", su_status(&r), su_tail(r.err, 2000));
    cr_assert(strstr(r.err, "heap check") == NULL, "the checker complained about a correct program:\n%s", su_tail(r.err, 2000));
    su_result_free(&r);
}
