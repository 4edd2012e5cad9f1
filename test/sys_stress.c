/* test/progs/stress_phases under each build and the options that change which paths run: every
 * block it checks whole must be intact, calloc'ed ones zero, and umalloc must say nothing (no
 * "double free", no heap-check line). The program moves memory between small blocks, extents
 * and large blocks in phases, so that the paths that hand memory from one kind to another
 * (small segments moved out of the region and back, extents cut over old bytes) run under
 * threads that hand blocks to each other. */
#include <criterion/criterion.h>

#include "sys_util.h"

static void stress(const char *lib, const char *option) {
    char *prog = su_prog("stress_phases");
    char *path = su_fmt("%s/build/%s", su_root(), lib);
    cr_assert(su_exists(path), "%s does not exist: run `make all secure`", path);
    const char *argv[] = {prog, "6", "2", "4000", NULL};
    const char *env[] = {su_fmt("LD_PRELOAD=%s", path), option, NULL}; /* su_spawn frees LD_PRELOAD entries */
    su_opts o = {.argv = argv, .env = env, .preload = 0, .timeout = 240};
    su_result r;
    su_run(&o, &r);
    cr_log_info("stress_phases under %s %s: %.1f s", lib, option ? option : "", r.secs);
    cr_assert(su_ok(&r) && strstr(r.out, "stress_phases ok") != NULL, "under %s %s: %s\n--- stderr ---\n%s", lib,
              option ? option : "", su_status(&r), su_tail(r.err, 3000));
    cr_assert(strstr(r.err, "umalloc") == NULL, "under %s %s umalloc said:\n%s", lib, option ? option : "", su_tail(r.err, 3000));
    su_result_free(&r);
    free(path);
    free(prog);
}

Test(stress, phases_under_the_defaults, .timeout = 300) { stress("libumalloc.so", NULL); }
Test(stress, phases_under_the_heap_check, .timeout = 300) { stress("libumalloc.so", "UMALLOC_CHECK=1"); }
Test(stress, phases_with_memory_given_back_at_every_free, .timeout = 300) { stress("libumalloc.so", "UMALLOC_PURGE_DELAY_MS=0"); }
Test(stress, phases_with_every_block_from_4k_mapped_alone, .timeout = 300) { stress("libumalloc.so", "UMALLOC_LARGE_THRESHOLD=4K"); }
Test(stress, phases_in_the_secure_build, .timeout = 300) { stress("libumalloc-secure.so", NULL); }
Test(stress, phases_in_the_secure_build_under_the_heap_check, .timeout = 300) { stress("libumalloc-secure.so", "UMALLOC_CHECK=1"); }
