#!/usr/bin/env bash
# scripts/vm-run.sh [OPTIONS] -- COMMAND [ARGS...]
#
# Runs COMMAND as root inside a throw-away Linux guest and hands back its stdout, its stderr and
# its exit status. Used for tests that need what the host cannot give: several NUMA nodes, or a
# sysctl such as vm.overcommit_memory=2 that must not be changed on a shared machine.
#
#   --nodes N            NUMA nodes, one QEMU socket each, SLIT 10 local / 20 remote (default 1)
#   --mem-per-node SIZE  guest RAM per node, e.g. 256M or 1G (default 512M)
#   --cpus-per-node N    vCPUs per node (default 1)
#   -t SECONDS           whole-run timeout (default 600)
#   --sysctl NAME=VALUE  set /proc/sys/NAME in the guest before COMMAND (repeatable)
#   -v                   print the guest console and timings on stderr
#
# Exit status: COMMAND's; 124 when the timeout hit; 125 when the guest could not be set up, did
# not boot or died (the tail of its console is then printed). Automatic NUMA balancing is off, so
# pages stay where they were put.
#
# How it works. The guest runs the host's own kernel (the newest /boot/vmlinuz-V that has a
# /lib/modules/V) under qemu-system-x86_64. The host's / is exported read-only over virtio-9p and
# mounted under an overlay with a tmpfs upper layer, so the host's binaries and libraries run as
# they are and writes outside the shared directory vanish with the guest. The current directory
# is a second, read-write 9p export, mounted at the same path. A small initramfs (static busybox,
# the virtio/9p/overlay modules with their dependencies, an /init written below) does the
# mounting, applies the sysctls, chroots and runs COMMAND with the host's bash and environment
# (stdin at EOF), writing stdout and stderr to two virtio-serial ports and "exit N" to a third;
# QEMU stores each port in a file, copied to our own stdout/stderr once the guest is off (output
# is therefore not live). /init then powers off; panic=-1 with -no-reboot ends QEMU on a crash.
#
# Cost. /dev/kvm on the project machines is PVM (kvm_pvm), which cannot boot a stock kernel, so
# this uses TCG emulation unless kvm_intel/kvm_amd is loaded: a boot takes ~5-10 s (measured on a
# busy 2-core host) and guest code runs 5-20x slower than natively; 9p is slow too (python3 -c 1
# takes ~1.5 s). Decompressing a bzImage under TCG alone costs ~8 s, so the first run extracts
# the uncompressed vmlinux (~65 MB, ~1 s) into ~/.cache/umalloc-vm and later boots use its PVH
# entry point. A guest that has not started COMMAND within 120 s is killed and booted again
# (at most 3 boots): rare TCG boot hangs exist. Missing packages (qemu-system-x86,
# linux-image-amd64, busybox-static) are installed with apt-get when run as root.
# shellcheck disable=SC2054  # commas inside QEMU option values, not array separators
set -uo pipefail

me=vm-run
nodes=1 mem=512M cpus=1 timeout_s=600 verbose=0
sysctls=()
die() { echo "$me: $*" >&2; exit 125; }
usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while (($#)); do
    case $1 in
        --nodes) nodes=${2:-}; shift 2 || die "--nodes needs a value" ;;
        --mem-per-node) mem=${2:-}; shift 2 || die "--mem-per-node needs a value" ;;
        --cpus-per-node) cpus=${2:-}; shift 2 || die "--cpus-per-node needs a value" ;;
        -t) timeout_s=${2:-}; shift 2 || die "-t needs a value" ;;
        --sysctl) sysctls+=("${2:-}"); shift 2 || die "--sysctl needs NAME=VALUE" ;;
        -v) verbose=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) usage >&2; exit 125 ;;
    esac
done
(($#)) || { usage >&2; exit 125; }
[[ $nodes =~ ^[1-9][0-9]?$ ]] || die "--nodes: want 1..99, got '$nodes'"
[[ $cpus =~ ^[1-9][0-9]?$ ]] || die "--cpus-per-node: want 1..99, got '$cpus'"
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "-t: want seconds, got '$timeout_s'"
if [[ ${mem^^} =~ ^([0-9]+)(M|MB|MIB)?$ ]]; then mem_mib=$((10#${BASH_REMATCH[1]}))
elif [[ ${mem^^} =~ ^([0-9]+)(G|GB|GIB)$ ]]; then mem_mib=$((10#${BASH_REMATCH[1]} * 1024))
else die "--mem-per-node: want e.g. 512M or 1G, got '$mem'"; fi
((mem_mib >= 128)) || die "--mem-per-node: at least 128M"
for s in "${sysctls[@]}"; do
    [[ $s =~ ^[a-z0-9_]+(\.[a-z0-9_]+)+=[^[:space:]]+$ ]] || die "--sysctl: want NAME=VALUE, got '$s'"
done

# ---- packages -------------------------------------------------------------------------------
qemu=${VM_RUN_QEMU:-qemu-system-x86_64}   # (another binary: for tests of this script)
missing() {
    need=()
    command -v "$qemu" >/dev/null || need+=(qemu-system-x86)
    compgen -G '/boot/vmlinuz-*' >/dev/null || need+=(linux-image-amd64)
    [[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1 || need+=(busybox-static)
    ((${#need[@]}))
}
if missing; then
    line="apt-get install -y --no-install-recommends ${need[*]}"
    ((EUID == 0)) || die "missing packages; run as root: $line"
    echo "$me: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get -q -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${need[@]}" >&2 ||
        { apt-get -q -o DPkg::Lock::Timeout=300 update >&2
          apt-get -q -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${need[@]}" >&2; } ||
        die "could not install the packages: $line"
    ! missing || die "still missing after apt-get: ${need[*]}"
fi

# ---- kernel ---------------------------------------------------------------------------------
kernel='' kver=''
for k in $(printf '%s\n' /boot/vmlinuz-* | sort -rV); do
    v=${k#/boot/vmlinuz-}
    [[ -r $k && -f /lib/modules/$v/modules.dep ]] && { kernel=$k kver=$v; break; }
done
[[ -n $kernel ]] || die "no readable /boot/vmlinuz-V with a /lib/modules/V (reinstall linux-image-amd64?)"
mods=/lib/modules/$kver

# The uncompressed kernel, found after the first compressed-stream magic that decompresses into
# an ELF file carrying the PVH entry note (Xen note type 18). Cached per kernel file.
cache=${XDG_CACHE_HOME:-$HOME/.cache}/umalloc-vm
vmlinux=$cache/vmlinux-$kver-$(stat -Lc %s-%Y "$kernel")
if [[ ! -s $vmlinux ]] && mkdir -p "$cache" 2>/dev/null; then
    rm -f "$cache/vmlinux-$kver-"*
    for fmt in '\xfd7zXZ\x00:xz -dcq' '\x28\xb5\x2f\xfd:zstd -dcq' '\x1f\x8b\x08:gzip -dcq'; do
        for off in $(LC_ALL=C grep -obUaP "${fmt%%:*}" "$kernel" | head -n 3 | cut -d: -f1); do
            tail -c +$((off + 1)) "$kernel" | ${fmt#*:} >"$vmlinux.$$" 2>/dev/null
            if [[ $(head -c 4 "$vmlinux.$$") == $'\x7fELF' ]] &&
               LC_ALL=C grep -qaP '\x04\x00\x00\x00[\x04\x08]\x00\x00\x00\x12\x00\x00\x00Xen\x00' "$vmlinux.$$"; then
                mv -f "$vmlinux.$$" "$vmlinux"; break 2
            fi
        done
    done
    rm -f "$vmlinux.$$"
fi
boot_kernel=$kernel
[[ -s $vmlinux ]] && boot_kernel=$vmlinux

# ---- initramfs ------------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vm-run.XXXXXX") || die "mktemp failed"
qpid=
trap '[[ -n $qpid ]] && kill "$qpid" 2>/dev/null; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
root=$tmp/initramfs
mkdir -p "$root"/{bin,proc,sys,dev,lower,rw,new,mod,etc}
cp /bin/busybox "$root/bin/busybox"

# Modules /init needs, dependencies first; modules.dep lists each module's dependencies.
declare -A have=()
add_mod() {
    local rel=$1 d out
    [[ -z ${have[$rel]:-} ]] || return 0
    have[$rel]=1
    for d in $(awk -v m="$rel:" '$1 == m { $1 = ""; print }' "$mods/modules.dep"); do add_mod "$d"; done
    out=$root/mod/${rel##*/}; out=${out%.xz}; out=${out%.zst}
    case $rel in
        *.ko) cp "$mods/$rel" "$out" ;;
        *.ko.xz) xz -dc "$mods/$rel" >"$out" ;;
        *.ko.zst) zstd -dcq "$mods/$rel" >"$out" ;;
    esac || die "cannot copy module $rel"
    echo "${out##*/}" >>"$root/etc/modules"
}
: >"$root/etc/modules"
for m in virtio_pci virtio_console 9pnet_virtio 9p overlay; do
    grep -qE "/$m\.ko" "$mods/modules.builtin" && continue
    rel=$(grep -oE "^([^:]*/)?$m\.ko(\.xz|\.zst)?:" "$mods/modules.dep" | head -n 1)
    [[ -n $rel ]] || die "kernel $kver has no module $m"
    add_mod "${rel%:}"
done

printf '%s\n' "${sysctls[@]}" >"$root/etc/sysctls"
share=$(pwd -P)
{   # the command, as run by the host's bash in the guest: host environment, same directory
    while IFS= read -r -d '' kv; do
        n=${kv%%=*}
        [[ $n =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
        [[ $n =~ ^(PWD|OLDPWD|SHLVL|_|BASH_.*|SHELLOPTS|BASHOPTS|UID|EUID|PPID)$ ]] && continue
        printf 'export %s=%q\n' "$n" "${kv#*=}"
    done < <(env -0)
    printf 'export VM_RUN=1\ncd %q || exit 125\nexec' "$share"
    printf ' %q' "$@"
    echo
} >"$root/etc/run.sh"

cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
exec </dev/null
port() {   # the /dev node of the virtio-serial port named $1
    for p in /sys/class/virtio-ports/*; do
        [ "$(cat "$p/name" 2>/dev/null)" = "$1" ] && echo "/dev/${p##*/}" && return 0
    done
    return 1
}
off() { sync; poweroff -f; sleep 5; }
fail() { echo "vm-run guest: $*" >/dev/console; [ -n "$ERR" ] && echo "vm-run guest: $*" >"$ERR"; off; }
ERR=
while read -r m; do insmod "/mod/$m" || fail "insmod $m"; done </etc/modules
n=0
until OUT=$(port vm.out) && ERR=$(port vm.err) && ST=$(port vm.status); do
    n=$((n + 1)); [ $n -lt 200 ] || fail "no virtio-serial ports"; sleep 0.05
done
o=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o $o,ro,cache=loose hostroot /lower || fail "cannot mount the host root"
mount -t tmpfs rw /rw && mkdir /rw/up /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/up,workdir=/rw/work root /new ||
    fail "cannot mount the overlay"
mount -t proc proc /new/proc; mount -t sysfs sys /new/sys; mount -t devtmpfs dev /new/dev
mkdir -p /new/dev/pts /new/dev/shm
mount -t devpts devpts /new/dev/pts; mount -t tmpfs -o mode=1777 shm /new/dev/shm
mount -t tmpfs -o mode=1777 tmp /new/tmp; mount -t tmpfs run /new/run
read -r share </etc/share
mkdir -p "/new$share" && mount -t 9p -o $o,cache=mmap hostcwd "/new$share" ||
    fail "cannot mount $share"
while read -r kv; do
    [ -n "$kv" ] || continue
    f=/new/proc/sys/$(echo "${kv%%=*}" | tr . /)
    echo "${kv#*=}" >"$f" && [ "$(cat "$f")" = "${kv#*=}" ] || fail "cannot set sysctl $kv"
done </etc/sysctls
cp /etc/run.sh /new/run/vm-run.sh
hostname vm-run
echo booted >"$ST"
chroot /new /bin/bash /run/vm-run.sh >"$OUT" 2>"$ERR"
echo "exit $?" >"$ST"
off
EOF
chmod 755 "$root/init"
echo "$share" >"$root/etc/share"
(cd "$root" && find . | cpio -o -H newc --quiet >"$tmp/initrd") 2>/dev/null ||
    (cd "$root" && find . | /bin/busybox cpio -o -H newc >"$tmp/initrd") 2>/dev/null ||
    die "cannot build the initramfs"

# ---- qemu -----------------------------------------------------------------------------------
accel=tcg
[[ -w /dev/kvm && ( -d /sys/module/kvm_intel || -d /sys/module/kvm_amd ) ]] && accel=kvm
append="console=ttyS0 rdinit=/init panic=-1 numa_balancing=disable acpi=noirq tsc=reliable"
append+=" no_timer_check mitigations=off audit=0 cryptomgr.notests 8250.nr_uarts=1"
((verbose)) || append+=" quiet loglevel=4"
esc() { printf '%s' "${1//,/,,}"; }   # QEMU doubles commas inside option values
q=("$qemu" -nodefaults -no-user-config -display none -monitor none -no-reboot
   -machine pc -accel "$accel" -cpu max -m $((mem_mib * nodes))M
   -smp $((nodes * cpus)),sockets="$nodes",cores="$cpus",threads=1
   -kernel "$boot_kernel" -initrd "$tmp/initrd" -append "$append"
   -serial "file:$(esc "$tmp/console")"
   -device virtio-serial-pci,id=ser)
for p in out err status; do
    q+=(-chardev "file,id=c$p,path=$(esc "$tmp/$p")" -device "virtserialport,bus=ser.0,chardev=c$p,name=vm.$p")
done
q+=(-fsdev local,id=fr,path=/,readonly=on,security_model=none,multidevs=remap
    -device virtio-9p-pci,fsdev=fr,mount_tag=hostroot
    -fsdev "local,id=fc,path=$(esc "$share"),security_model=none,multidevs=remap"
    -device virtio-9p-pci,fsdev=fc,mount_tag=hostcwd)
for ((i = 0; i < nodes; i++)); do
    q+=(-object "memory-backend-ram,id=m$i,size=${mem_mib}M"
        -numa "node,nodeid=$i,cpus=$((i * cpus))-$((i * cpus + cpus - 1)),memdev=m$i")
    for ((j = 0; j < i; j++)); do q+=(-numa "dist,src=$j,dst=$i,val=20"); done
done

# ---- run: poll until QEMU exits, the run times out or the boot takes too long -----------------
tail_console() { echo "$me: --- guest console (last 30 lines) ---" >&2; tail -n 30 "$tmp/console" >&2 2>/dev/null; }
start=$SECONDS
for boot in 1 2 3; do
    rm -f "$tmp"/{out,err,status,console,qemu.log}
    t0=${EPOCHREALTIME/./} b0=$SECONDS
    "${q[@]}" </dev/null >"$tmp/qemu.log" 2>&1 &
    qpid=$!
    why=
    while kill -0 "$qpid" 2>/dev/null; do
        sleep 0.2
        if ((SECONDS - start >= timeout_s)); then why=timeout; break; fi
        if ((SECONDS - b0 >= 120)) && ! grep -qs booted "$tmp/status"; then why=boot; break; fi
    done
    [[ -n $why ]] && kill "$qpid" 2>/dev/null
    wait "$qpid"; qrc=$?; qpid=
    if ((verbose)); then
        ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
        cat "$tmp/console" >&2
        printf '%s: boot %d: qemu ran %d.%03d s, exit %d\n' "$me" "$boot" $((ms / 1000)) $((ms % 1000)) "$qrc" >&2
    fi
    [[ $why == boot ]] || break
    echo "$me: the guest did not boot within 120 s (boot $boot of 3)" >&2
done
cat "$tmp/out" 2>/dev/null
cat "$tmp/err" >&2 2>/dev/null
case $why in
    timeout) echo "$me: timed out after ${timeout_s}s" >&2; tail_console; exit 124 ;;
    boot) tail_console; exit 125 ;;
esac
rc=$(sed -n 's/^exit \([0-9]\+\)$/\1/p' "$tmp/status" 2>/dev/null | tail -n 1)
if [[ -z $rc ]]; then
    echo "$me: the guest stopped without a status (qemu exit $qrc)" >&2
    cat "$tmp/qemu.log" >&2
    tail_console
    exit 125
fi
exit "$rc"
