#!/usr/bin/env bash
# Regenerates expected/<case>.txt from native runs of every case in cases.txt on this host.
# The file holds the program's stdout without its "timing:" lines (which are never
# compared), then a last line "[exit N]". For the "proposal" suite the native command gets
# the extra argument "as-collapse" (see cases.txt).
# When the musl build prints something else, that output goes to expected/<case>.musl.txt.
# Usage: update-expected.sh [case...]   (default: every case)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/build.sh"
mkdir -p "$here/expected"

native_output() { # libc program args...
  local libc=$1 program=$2; shift 2
  local status=0
  (cd "$here/out/$libc" && "./$program" "$@") >"$tmp" 2>/dev/null || status=$?
  grep -v '^timing:' "$tmp" || true
  echo "[exit $status]"
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
while read -r suite name rest; do
  case "$suite" in ''|'#'*) continue ;; esac
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  # Drop the PageLab options ("... --") that precede the program.
  if [[ " $rest " == *" -- "* ]]; then rest=${rest#*-- }; fi
  read -r -a command <<<"$rest"
  if [ "$suite" = proposal ]; then command+=(as-collapse); fi
  if [ "$suite" = foreign ]; then
    native_output foreign "${command[@]}" >"$here/expected/$name.txt"
    echo "$name: $(tail -n 1 "$here/expected/$name.txt")"
    continue
  fi
  native_output glibc "${command[@]}" >"$here/expected/$name.txt"
  if [ -x "$here/out/musl/${command[0]}" ]; then
    native_output musl "${command[@]}" >"$here/expected/$name.musl.txt"
    if cmp -s "$here/expected/$name.txt" "$here/expected/$name.musl.txt"; then
      rm "$here/expected/$name.musl.txt"
    fi
  fi
  echo "$name: $(tail -n 1 "$here/expected/$name.txt")"
done <"$here/cases.txt"
