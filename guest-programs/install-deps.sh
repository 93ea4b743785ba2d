#!/usr/bin/env bash
# Installs the Debian packages the guest programs and tests need, when missing: musl-tools
# (musl-gcc, for the musl builds) and busybox-static (a static binary we did not write).
set -u
need=()
command -v musl-gcc >/dev/null 2>&1 || need+=(musl-tools)
[ -x /bin/busybox ] || need+=(busybox-static)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
$sudo apt-get install -y "${need[@]}" >/dev/null 2>&1 || {
  $sudo apt-get update >/dev/null 2>&1 && $sudo apt-get install -y "${need[@]}" >/dev/null 2>&1
} || echo "warning: could not install ${need[*]}: musl builds are skipped, busybox cases fail" >&2
exit 0
