#!/usr/bin/env bash
# scripts/test-install.sh   (the `install` step of scripts/run-tests.sh; run after `make all`)
#
# Checks that umalloc installs like a library should, one PASS/FAIL/SKIP line per check:
#  1. `make install DESTDIR=<tmp> PREFIX=/usr` lays out exactly the expected files, with the
#     soname and its links;
#  2. a program built with `pkg-config --cflags --libs umalloc` from the staged tree runs, as
#     does one linked with the staged libumalloc.a;
#  3. the staged launcher preloads the library, passes options, exit statuses and LD_PRELOAD
#     through, and rejects bad usage with one line and status 2;
#  4. every manual page renders without a groff warning; umalloc(7) lists the options that
#     UMALLOC_HELP=1 lists (names, types, defaults), umalloc(3) every um_* function;
#  5. `make uninstall` with the same variables removes every file;
#  6. `make deb` builds packages in which lintian finds no error; then, only as root and with
#     CI=true or UM_TEST_DPKG=1, they are installed with dpkg -i, tried, and purged (a trap
#     purges them on any failure, so the machine is never left with them).
# Exits 1 if any check failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# `make test` runs us under its own make: what we build is a build of its own.
unset MAKEFLAGS MFLAGS MAKELEVEL

npass=0 nfail=0
pass() { echo "PASS: $*"; npass=$((npass + 1)); }
fail() { echo "FAIL: $*"; nfail=$((nfail + 1)); }
skip() { echo "SKIP: $*"; }
# check DESCRIPTION CMD...: PASS if CMD succeeds, else FAIL with what it printed.
check() {
    local what=$1 out
    shift
    if out=$("$@" 2>&1); then pass "$what"; else fail "$what"; [[ -z $out ]] || printf '%s\n' "$out" | tail -n 20 | sed 's/^/    /'; fi
}

version=$(sed -n 's/.*define UMALLOC_VERSION "\(.*\)".*/\1/p' include/umalloc.h)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/umalloc-test-install.XXXXXX")
stage=$tmp/stage
prefix=/usr
root=$stage$prefix
libdir=$root/lib
lib=$libdir/libumalloc.so.0
launcher=$root/bin/umalloc

purge_list=()   # packages this script installed and must purge
cleanup() {
    if ((${#purge_list[@]})); then
        echo "test-install: purging ${purge_list[*]}"
        dpkg --purge "${purge_list[@]}" >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. make install ------------------------------------------------------------------------
install_vars=(DESTDIR="$stage" PREFIX="$prefix")
check "make install DESTDIR=<tmp> PREFIX=$prefix" \
    nice -n 10 make --no-print-directory -s install "${install_vars[@]}"

expected_files=(
    bin/umalloc bin/umalloc-stat
    lib/libumalloc.so."$version" lib/libumalloc.a
    include/umalloc.h lib/pkgconfig/umalloc.pc
    share/man/man1/umalloc.1 share/man/man1/umalloc-stat.1
    share/man/man3/umalloc.3 share/man/man7/umalloc.7
)
expected_links=("lib/libumalloc.so.0 libumalloc.so.$version" "lib/libumalloc.so libumalloc.so.0")
for f in "${expected_files[@]}"; do
    check "installed: $prefix/$f" test -f "$root/$f" -a ! -L "$root/$f"
done
for l in "${expected_links[@]}"; do
    check "installed: $prefix/${l% *} -> ${l#* }" test "$(readlink "$root/${l% *}")" = "${l#* }"
done
for f in bin/umalloc bin/umalloc-stat; do check "executable: $prefix/$f" test -x "$root/$f"; done
n_installed=$(find "$stage" \( -type f -o -type l \) | wc -l)
check "nothing else installed ($n_installed files and links)" \
    test "$n_installed" -eq $((${#expected_files[@]} + ${#expected_links[@]}))
check "soname of the library is libumalloc.so.0" \
    bash -c "readelf -d '$lib' | grep -q 'SONAME.*\[libumalloc\.so\.0\]'"

# ---- 2. pkg-config -------------------------------------------------------------------------
cat >"$tmp/app.c" <<'EOF'
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <umalloc.h>

int main(void) {
    char *p = um_malloc(100);
    if (p == NULL || um_malloc_usable_size(p) < 100 || !um_owns(p)) return 1;
    memset(p, 0x5a, 100);
    um_free(p);
    if (strcmp(um_version(), UMALLOC_VERSION) != 0) return 2;
    errno = 0;
    void *huge = um_malloc(SIZE_MAX);
    if (huge != NULL || errno != ENOMEM) return 3;
    printf("um_version %s\n", um_version());
    return 0;
}
EOF
# PKG_CONFIG_LIBDIR: the staged umalloc.pc only, never one installed on the machine.
pc=(env PKG_CONFIG_LIBDIR="$libdir/pkgconfig" pkg-config --define-variable=prefix="$root")
if flags=$("${pc[@]}" --cflags --libs umalloc 2>&1); then
    pass "pkg-config --cflags --libs umalloc: $flags"
    read -r -a flag_words <<<"$flags"
    check "cc app.c \$(pkg-config --cflags --libs umalloc)" cc -o "$tmp/app" "$tmp/app.c" "${flag_words[@]}"
    check "app runs against the staged library" \
        bash -c "out=\$(LD_LIBRARY_PATH='$libdir' '$tmp/app') && [[ \$out == 'um_version $version' ]]"
    check "app needs libumalloc.so.0" bash -c "readelf -d '$tmp/app' | grep -q 'NEEDED.*\[libumalloc\.so\.0\]'"
else
    fail "pkg-config --cflags --libs umalloc: $flags"
fi
check "pkg-config --modversion umalloc is $version" test "$("${pc[@]}" --modversion umalloc 2>&1)" = "$version"
check "cc app.c libumalloc.a (static, um_* only) runs" \
    bash -c "cc -I'$root/include' -o '$tmp/app-static' '$tmp/app.c' '$libdir/libumalloc.a' -pthread -ldl && '$tmp/app-static' >/dev/null"

# ---- 3. the launcher -----------------------------------------------------------------------
check "launcher names the installed library ($prefix/lib/libumalloc.so.0)" \
    bash -c "'$launcher' --version | grep -qx 'library: $prefix/lib/libumalloc.so.0'"
check "launcher --version says umalloc $version" bash -c "'$launcher' --version | grep -qx 'umalloc $version'"
# The staged tree is not where the launcher was told the library would be: --library.
run=("$launcher" --library "$lib")
maps_py='import sys; m=[l.split()[-1] for l in open("/proc/self/maps") if "libumalloc" in l]; print(m[0] if m else "none")'
mapped=$("${run[@]}" -- python3 -c "$maps_py" 2>&1) || true
check "python3 through the launcher has the library mapped ($mapped)" \
    test "$mapped" = "$(readlink -f "$lib")"
out=$("${run[@]}" --stats-at-exit -- python3 -c 'print(1)' 2>"$tmp/err") || true
check "umalloc --stats-at-exit -- python3 -c 'print(1)' prints 1" test "$out" = 1
check "... and a statistics dump on stderr" \
    bash -c "grep -q '^umalloc $version statistics: pid' '$tmp/err' && grep -q '^end of umalloc statistics' '$tmp/err'"
rc=0; out=$("$launcher" --bogus 2>&1) || rc=$?
check "umalloc --bogus: exit 2 ($rc), one line: $out" test "$rc" = 2 -a "$(printf '%s\n' "$out" | wc -l)" = 1
rc=0; out=$("$launcher" -v 2>&1) || rc=$?
check "umalloc without a program: exit 2 ($rc), one line" test "$rc" = 2 -a "$(printf '%s\n' "$out" | wc -l)" = 1
rc=0; "${run[@]}" -- sh -c 'exit 7' || rc=$?
check "the program's exit status passes through (7: $rc)" test "$rc" = 7
# shellcheck disable=SC2016  # $LD_PRELOAD is the child's
out=$(LD_PRELOAD=/lib/x86_64-linux-gnu/libm.so.6 "${run[@]}" -- sh -c 'echo "$LD_PRELOAD"')
check "an existing LD_PRELOAD is kept, umalloc appended ($out)" \
    test "$out" = "/lib/x86_64-linux-gnu/libm.so.6:$lib"
out=$("${run[@]}" --stats-file /dev/null -o purge_delay_ms=0 --numa local --hugepages 2M -- env 2>/dev/null)
# shellcheck disable=SC2016  # the script is bash -c's
check "flags become UMALLOC_* variables" bash -c 'for v in "$@"; do grep -qx "$v" <<<"$0" || exit 1; done' \
    "$out" UMALLOC_STATS_FILE=/dev/null UMALLOC_PURGE_DELAY_MS=0 UMALLOC_NUMA_POLICY=local UMALLOC_HUGEPAGES=2M

# ---- 4. manual pages -----------------------------------------------------------------------
for page in "$root"/share/man/man*/*; do
    name=${page##*/}
    check "groff -ww renders $name without a warning" \
        bash -c "err=\$(groff -ww -man -Tutf8 '$page' 2>&1 >/dev/null) && [[ -z \$err ]] || { echo \"\$err\"; exit 1; }"
    check "man --warnings -l renders $name without a warning" \
        bash -c "err=\$(man --warnings -l '$page' 2>&1 >/dev/null) && [[ -z \$err ]] && man -l '$page' | grep -q '^NAME' || { echo \"\$err\"; exit 1; }"
done
# "NAME TYPE DEFAULT" per option: from umalloc(7)'s OPTIONS section, and from UMALLOC_HELP=1.
MANWIDTH=120 man -l "$root/share/man/man7/umalloc.7" 2>/dev/null |
    awk '/^OPTIONS$/ { f = 1; next } /^[^ ]/ { f = 0 }
         f && match($0, /^ +UMALLOC_[A-Z0-9_]+=[a-z]+ \(default .*\)$/) {
             sub(/^ +/, ""); sub(/=/, " "); sub(/ \(default /, " "); sub(/\)$/, ""); print }' |
    sort >"$tmp/man-options"
env -i PATH="$PATH" UMALLOC_HELP=1 LD_PRELOAD="$lib" /bin/true 2>&1 |
    awk '/^umalloc:   UMALLOC_/ { print $2, $3, $5 }' | sort >"$tmp/help-options"
check "umalloc(7) lists the options UMALLOC_HELP=1 lists ($(wc -l <"$tmp/help-options") options)" \
    bash -c "[[ -s '$tmp/help-options' ]] && diff <(cut -d' ' -f1 '$tmp/man-options') <(cut -d' ' -f1 '$tmp/help-options')"
check "... with the same types and defaults" diff "$tmp/man-options" "$tmp/help-options"
missing=$(for f in $(grep -o '\bum_[a-z_]*(' include/umalloc.h | tr -d '(' | sort -u); do
              man -l "$root/share/man/man3/umalloc.3" 2>/dev/null | grep -q "\b$f(" || echo "$f"
          done)
check "umalloc(3) documents every um_* function of umalloc.h${missing:+ (missing: $missing)}" test -z "$missing"

# ---- 5. make uninstall ---------------------------------------------------------------------
check "make uninstall with the same variables" \
    nice -n 10 make --no-print-directory -s uninstall "${install_vars[@]}"
left=$(find "$stage" \( -type f -o -type l \) | sed "s|^$stage||")
check "nothing installed is left${left:+: $left}" test -z "$left"

# ---- 6. the Debian package -----------------------------------------------------------------
packages=(libumalloc0 libumalloc-dev umalloc-tools)
t0=$SECONDS
if ! nice -n 10 make --no-print-directory deb >"$tmp/deb.log" 2>&1; then
    fail "make deb"; tail -n 30 "$tmp/deb.log" | sed 's/^/    /'
else
    pass "make deb ($((SECONDS - t0)) s)"
    debs=() ok=1
    for p in "${packages[@]}"; do
        d=build/deb/${p}_${version}_amd64.deb
        if [[ -f $d ]]; then debs+=("$d"); else fail "missing $d"; ok=; fi
    done
    changes=build/deb/umalloc_${version}_amd64.changes
    if command -v lintian >/dev/null; then
        lintian "$changes" "${debs[@]}" >"$tmp/lintian" 2>&1 || true
        errors=$(grep -c '^E: ' "$tmp/lintian" || true)
        warnings=$(grep -c '^W: ' "$tmp/lintian" || true)
        check "lintian: $errors errors, $warnings warnings" test "$errors" = 0
        grep '^[EW]: ' "$tmp/lintian" | sed 's/^/    /' || true
    else
        fail "lintian is not installed (scripts/deps.sh test installs it)"
    fi

    installed=$(for p in "${packages[@]}"; do
                    dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$p" 2>/dev/null
                done | awk '$2 !~ /^u/ && $2 !~ /^p/ { print $1 }' || true)
    if [[ -z $ok ]]; then
        skip "dpkg -i: the packages were not all built"
    elif [[ $(id -u) != 0 ]]; then
        skip "dpkg -i / dpkg --purge NOT TESTED: not root"
    elif [[ ${CI:-} != true && ${UM_TEST_DPKG:-} != 1 ]]; then
        skip "dpkg -i / dpkg --purge NOT TESTED: installs on this machine only with CI=true or UM_TEST_DPKG=1"
    elif [[ -n $installed ]]; then
        skip "dpkg -i / dpkg --purge NOT TESTED: already installed here, left alone: ${installed//$'\n'/ }"
    else
        # Every file and link of the packages (not directories), as dpkg-deb lists them.
        for d in "${debs[@]}"; do dpkg-deb --fsys-tarfile "$d" | tar -t; done |
            grep -v '/$' | sed 's|^\./|/|' >"$tmp/deb-files"
        purge_list=("${packages[@]}")
        check "dpkg -i ${debs[*]##*/}" dpkg -i "${debs[@]}"
        check "/usr/bin/umalloc is installed" test -x /usr/bin/umalloc
        check "umalloc -- /bin/true exits 0" umalloc -- /bin/true
        check "the installed launcher preloads the installed library" \
            bash -c "umalloc -- python3 -c '$maps_py' | grep -q '^/usr/lib/.*/libumalloc\.so\.$version\$'"
        check "ldconfig knows libumalloc.so.0" bash -c "ldconfig -p | grep -q 'libumalloc\.so\.0 '"
        check "an app built with the system's pkg-config runs" \
            bash -c "cc -o '$tmp/app-sys' '$tmp/app.c' \$(pkg-config --cflags --libs umalloc) && '$tmp/app-sys' >/dev/null"
        check "dpkg --purge ${packages[*]}" dpkg --purge "${packages[@]}"
        purge_list=()
        still=$(for p in "${packages[@]}"; do dpkg -L "$p" 2>/dev/null; done || true)
        check "dpkg -L lists nothing after the purge" test -z "$still"
        left=$(while read -r f; do [[ -e $f || -L $f ]] && echo "$f"; done <"$tmp/deb-files" || true)
        check "none of the $(wc -l <"$tmp/deb-files") packaged files is left${left:+: $left}" test -z "$left"
    fi
fi

echo "test-install: $npass passed, $nfail failed"
((nfail == 0))
