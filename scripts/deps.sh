#!/usr/bin/env bash
# scripts/deps.sh MODE   (MODE = test | bench)
#
# Makes sure every Debian package that `make test` (MODE=test) or `make bench` (MODE=bench) needs
# is installed. Fast and silent when all is there: one dpkg-query call, a few link probes, and a
# single line "deps(MODE): ok". When something is missing:
#   - as root: `apt-get update` once, then `apt-get install -y --no-install-recommends PKGS`
#     (non-interactive; waits up to 5 minutes for an apt/dpkg lock held by another process);
#   - otherwise: prints "missing: PKGS" and "run: sudo apt-get install -y PKGS", exits 1.
# Idempotent: running it again after a successful install does nothing.
set -euo pipefail

mode=${1:-}
case "$mode" in
    test|bench) ;;
    *) echo "usage: $0 test|bench" >&2; exit 2 ;;
esac

# Packages (Debian 12 bookworm names). "a|b" means either one will do; "a" is installed if neither is.
test_pkgs=(
    build-essential gcc make      # compiler, make, libc headers
    libasan8 libubsan1 libtsan2   # gcc 12's sanitizer runtimes (unit-asan, unit-tsan)
    libcriterion-dev pkg-config   # unit and system tests
    valgrind                      # callgrind instruction counts
    python3 sqlite3 git           # real programs driven by the system tests
    redis-server redis-tools
    coreutils file                # timeout, file
    libjemalloc2 libjemalloc-dev  # other allocators, compared side by side
    libmimalloc2.0 libmimalloc-dev
    libnuma-dev numactl           # NUMA placement
    debhelper dpkg-dev lintian    # make deb and its checks (scripts/test-install.sh)
    man-db groff-base             # man -l and groff -ww render the manual pages
    clang libclang-rt-dev         # libFuzzer (make fuzz, fuzz-replay); clang only recommends the rt
    qemu-system-x86 linux-image-amd64 busybox-static   # the guest of scripts/vm-run.sh (guest step)
)
bench_pkgs=(
    "${test_pkgs[@]}"
    libgoogle-perftools-dev libtcmalloc-minimal4   # tcmalloc
    "gnuplot-nox|gnuplot-qt|gnuplot-x11"           # plots for docs/benchmarks.md
    time                                           # /usr/bin/time -v (peak RSS)
)
if [[ $mode == test ]]; then pkgs=("${test_pkgs[@]}"); else pkgs=("${bench_pkgs[@]}"); fi

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps($mode): dpkg-query not found: this script supports Debian/Ubuntu only;" \
         "install by hand: ${pkgs[*]//|/ or }" >&2
    exit 1
fi

# Every package name mentioned, once.
declare -A seen=()
all_names=()
for entry in "${pkgs[@]}"; do
    IFS='|' read -r -a alts <<<"$entry"
    for p in "${alts[@]}"; do
        [[ -n ${seen[$p]:-} ]] || { seen[$p]=1; all_names+=("$p"); }
    done
done

# missing_pkgs: prints the packages to install (the first alternative of each unsatisfied entry).
# One dpkg-query for all names; a name is present if any of its lines (one per architecture)
# reads "... ok installed". Unknown names make dpkg-query complain and exit 1: both ignored.
missing_pkgs() {
    local -A ok=()
    local name status entry p sat
    while IFS=$'\t' read -r name status; do
        [[ $status == *" ok installed" ]] && ok[${name%%:*}]=1
    done < <(dpkg-query -W -f='${Package}\t${Status}\n' "${all_names[@]}" 2>/dev/null || true)
    for entry in "${pkgs[@]}"; do
        IFS='|' read -r -a alts <<<"$entry"
        sat=
        for p in "${alts[@]}"; do [[ -n ${ok[$p]:-} ]] && { sat=1; break; }; done
        [[ -n $sat ]] || printf '%s\n' "${alts[0]}"
    done
}

# Link probes: a package can be "installed" and still not give a working toolchain (a missing
# runtime, a broken symlink). Only link, do not run (runtime quirks are run-tests.sh's business).
probe() {
    local dir rc=0
    dir=$(mktemp -d "${TMPDIR:-/tmp}/umalloc-deps.XXXXXX")
    cat >"$dir/t.c" <<'EOF'
#include <pthread.h>
#include <stdlib.h>
static void *f(void *a) { return malloc(16 + (a != NULL)); }
int main(void) { pthread_t t; void *r; pthread_create(&t, 0, f, 0); pthread_join(t, &r); free(r); return 0; }
EOF
    cat >"$dir/c.c" <<'EOF'
#include <criterion/criterion.h>
Test(deps, probe) { cr_assert(1); }
EOF
    try() {   # try LABEL CMD...: run CMD quietly; on failure say what could not be linked
        local label=$1 out
        shift
        if ! out=$("$@" 2>&1); then
            echo "deps($mode): cannot link with $label:" >&2
            printf '%s\n' "$out" | tail -n 15 >&2
            rc=1
        fi
    }
    try "gcc -fsanitize=thread" gcc -O1 -fsanitize=thread "$dir/t.c" -o "$dir/t-tsan" -pthread
    try "gcc -fsanitize=address,undefined" \
        gcc -O1 -fsanitize=address,undefined "$dir/t.c" -o "$dir/t-asan" -pthread
    try "Criterion (-lcriterion)" gcc "$dir/c.c" -o "$dir/c" -lcriterion
    try "libnuma (-lnuma)" gcc "$dir/t.c" -o "$dir/t-numa" -pthread -lnuma
    cat >"$dir/f.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return n > 0 && d[0] == 1; }
EOF
    try "clang -fsanitize=fuzzer,address,undefined" \
        clang -fsanitize=fuzzer,address,undefined "$dir/f.c" -o "$dir/f" -pthread
    rm -rf "$dir"
    return $rc
}

# apt-get with a retry while another apt/dpkg holds its lock (5 minutes in all). `install` waits
# by itself thanks to DPkg::Lock::Timeout; `update` ignores that option, hence the loop.
apt_log=
apt_retry() {
    local deadline=$((SECONDS + 300)) rc
    while :; do
        rc=0
        apt-get -q -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 "$@" >>"$apt_log" 2>&1 </dev/null || rc=$?
        ((rc == 0)) && return 0
        if tail -n 5 "$apt_log" | grep -qiE 'could not get lock|unable to lock|unable to acquire|is another process using it' &&
           ((SECONDS < deadline)); then
            echo "deps($mode): apt is locked by another process, retrying in 5 s..." >&2
            sleep 5
            continue
        fi
        return $rc
    done
}

missing=$(missing_pkgs | tr '\n' ' ')
missing=${missing% }

if [[ -z $missing ]]; then
    probe || exit 1
    echo "deps($mode): ok"
    exit 0
fi

if [[ $(id -u) != 0 ]]; then
    echo "missing: $missing" >&2
    echo "run: sudo apt-get install -y $missing" >&2
    exit 1
fi

echo "deps($mode): installing: $missing"
export DEBIAN_FRONTEND=noninteractive
apt_log=$(mktemp "${TMPDIR:-/tmp}/umalloc-deps-apt.XXXXXX")

# Do not let package scripts start services (redis-server) on this machine as a side effect:
# a policy-rc.d that says "no" for the duration of the install, if the system has none.
policy=/usr/sbin/policy-rc.d
made_policy=
cleanup() { [[ -n $made_policy ]] && rm -f "$policy"; return 0; }
trap cleanup EXIT
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
fi

if ! apt_retry update; then
    # Stale lists may still be enough; the install below says if they are not.
    echo "deps($mode): warning: apt-get update failed (see below); trying the install anyway" >&2
    tail -n 5 "$apt_log" >&2
fi
# shellcheck disable=SC2086  # $missing is a list of package names
if ! apt_retry install -y --no-install-recommends $missing; then
    echo "deps($mode): apt-get install failed; last lines of $apt_log:" >&2
    tail -n 30 "$apt_log" >&2
    exit 1
fi

still=$(missing_pkgs | tr '\n' ' ')
still=${still% }
if [[ -n $still ]]; then
    echo "deps($mode): still missing after install: $still (apt log: $apt_log)" >&2
    exit 1
fi
probe || exit 1
rm -f "$apt_log"
echo "deps($mode): ok (installed: $missing)"
