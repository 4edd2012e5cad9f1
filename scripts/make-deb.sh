#!/usr/bin/env bash
# scripts/make-deb.sh   (run by `make deb`)
#
# Builds the Debian packages (libumalloc0, libumalloc-dev, umalloc-tools) with
# `dpkg-buildpackage -us -uc -b`, in a copy of this tree at build/deb/umalloc-VERSION: the
# package build starts with `make clean` and leaves debian/ full of staging files, neither of
# which should happen to a working checkout. dpkg-buildpackage writes the .deb files, the
# .changes and the .buildinfo into the copy's parent, build/deb/; the copy is then removed.
# The full log is build/deb/build.log. Needs dpkg-dev and debhelper (scripts/deps.sh test).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=build/deb
version=$(sed -n 's/.*define UMALLOC_VERSION "\(.*\)".*/\1/p' include/umalloc.h)
src=$out/umalloc-$version

for tool in dpkg-buildpackage dh dpkg-parsechangelog; do
    if ! command -v "$tool" >/dev/null; then
        echo "make-deb: $tool not found: install dpkg-dev and debhelper (scripts/deps.sh test)" >&2
        exit 1
    fi
done
changelog_version=$(dpkg-parsechangelog -l debian/changelog -S Version)
if [[ $changelog_version != "$version" ]]; then
    echo "make-deb: debian/changelog is at $changelog_version, include/umalloc.h at $version:" \
         "add a changelog entry (dch -v $version)" >&2
    exit 1
fi

rm -rf "$out"
mkdir -p "$src"
tar --exclude=./build --exclude=./.git -cf - . | tar -C "$src" -xf -

# A make that runs this script passes its jobserver down in MAKEFLAGS; the package build is
# a build of its own.
unset MAKEFLAGS MFLAGS MAKELEVEL
log=$out/build.log
echo "make-deb: dpkg-buildpackage -us -uc -b in $src (log: $log)"
if ! (cd "$src" && DEB_BUILD_OPTIONS="nocheck ${DEB_BUILD_OPTIONS:-}" \
          dpkg-buildpackage -us -uc -b) >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "make-deb: dpkg-buildpackage failed; the full log is $log" >&2
    exit 1
fi
rm -rf "$src"
for f in "$out"/*.deb "$out"/*.changes; do echo "make-deb: $f"; done
