#!/usr/bin/env bash
# Builds every guest program as a static x86-64 binary: glibc (gcc) into out/glibc and,
# when musl-gcc is installed, musl into out/musl. Incremental: rebuilds only changed sources.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/out/glibc" "$here/out/musl"
for src in "$here"/src/*.c; do
  [ -e "$src" ] || continue
  name=$(basename "$src" .c)
  out="$here/out/glibc/$name"
  if [ ! -e "$out" ] || [ "$src" -nt "$out" ]; then
    gcc -static -O2 -o "$out" "$src" -lm
  fi
  if command -v musl-gcc >/dev/null 2>&1; then
    out="$here/out/musl/$name"
    if [ ! -e "$out" ] || [ "$src" -nt "$out" ]; then
      musl-gcc -static -O2 -o "$out" "$src" -lm
    fi
  fi
done
