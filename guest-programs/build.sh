#!/usr/bin/env bash
# Builds every guest program as a static x86-64 binary: glibc (gcc) into out/glibc and,
# when musl-gcc is installed, musl into out/musl. Incremental: rebuilds a program when its
# source or a shared header in src/ changed. out/foreign gets static binaries built by others
# (Debian's busybox-static) and the data files their cases read.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/out/glibc" "$here/out/musl" "$here/out/foreign"
newest_header=$(ls -t "$here"/src/*.h 2>/dev/null | head -n 1)
stale() { [ ! -e "$1" ] || [ "$2" -nt "$1" ] || { [ -n "$newest_header" ] && [ "$newest_header" -nt "$1" ]; }; }
for src in "$here"/src/*.c; do
  [ -e "$src" ] || continue
  name=$(basename "$src" .c)
  out="$here/out/glibc/$name"
  if stale "$out" "$src"; then
    gcc -static -O2 -Wall -Wextra -o "$out" "$src" -lm
  fi
  if command -v musl-gcc >/dev/null 2>&1; then
    out="$here/out/musl/$name"
    if stale "$out" "$src"; then
      musl-gcc -static -O2 -Wall -Wextra -o "$out" "$src" -lm
    fi
  fi
done

# Static binaries we did not write (install-deps.sh installs them), with their data files.
if [ -x /bin/busybox ]; then
  cp -p /bin/busybox "$here/out/foreign/busybox"
fi
cp -p "$here"/data/* "$here/out/foreign/"
