/* The OS layer's clock and CPU count (os/clock.c): the clock is the vDSO's, read without
 * libc's wrapper, and agrees with CLOCK_MONOTONIC_COARSE; the CPU count is the affinity mask's. */
#include <criterion/criterion.h>
#include <sched.h>
#include <time.h>

#include "os/os.h"

static uint64_t libc_coarse_ms(void) {
    struct timespec ts;
    cr_assert(clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

Test(clock, comes_from_the_vdso) {
    /* every x86-64 and arm64 Linux maps a vDSO with __vdso_clock_gettime */
    cr_assert(umi_os_clock_from_vdso(), "umi_os_now_ms did not find the vDSO's clock_gettime");
}

Test(clock, agrees_with_the_coarse_monotonic_clock) {
    for (int i = 0; i < 50; i++) {
        uint64_t before = libc_coarse_ms(), now = umi_os_now_ms(), after = libc_coarse_ms();
        cr_assert(before <= now && now <= after, "umi_os_now_ms %llu outside [%llu, %llu]", (unsigned long long)now,
                  (unsigned long long)before, (unsigned long long)after);
        struct timespec nap = {0, 300000};
        nanosleep(&nap, NULL);
    }
}

Test(clock, moves_forward) {
    uint64_t start = umi_os_now_ms();
    struct timespec nap = {0, 30 * 1000000};
    nanosleep(&nap, NULL);
    uint64_t later = umi_os_now_ms();
    cr_assert(later >= start + 20, "30 ms of sleep moved the clock %llu ms", (unsigned long long)(later - start));
}

Test(cpu_count, is_the_affinity_masks) {
    cpu_set_t set;
    cr_assert(sched_getaffinity(0, sizeof set, &set) == 0);
    cr_assert_eq(umi_os_cpu_count(), (unsigned)CPU_COUNT(&set));
    /* and follows a narrower mask */
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) { CPU_SET(c, &one); break; }
    cr_assert(sched_setaffinity(0, sizeof one, &one) == 0);
    unsigned narrowed = umi_os_cpu_count();
    cr_assert(sched_setaffinity(0, sizeof set, &set) == 0);
    cr_assert_eq(narrowed, 1u);
}
