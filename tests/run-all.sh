#!/usr/bin/env bash
# Runs every PageLab test: installs what the tests need, builds the guest programs,
# runs all xunit projects and ends with one line "N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash guest-programs/install-deps.sh
bash guest-programs/build.sh || { echo "guest program build failed"; echo "0 passed, 1 failed"; exit 1; }

results=$(mktemp -d)
dotnet test PageLab.slnx -c Release --logger "trx" --results-directory "$results" "$@"
status=$?

# The page copy/zero paths again with instruction sets switched off (STYLE.md: every vector path is
# also tested with AVX-512, AVX2 and all hardware intrinsics disabled); their results count below.
for knob in DOTNET_EnableAVX512 DOTNET_EnableAVX2 DOTNET_EnableHWIntrinsic; do
  env "$knob=0" dotnet test tests/PageLab.Emulator.Tests -c Release --no-build --filter "FullyQualifiedName~PageCopyTests" \
    --logger "trx;LogFileName=pagecopy-$knob.trx" --results-directory "$results" || status=1
done

passed=0; failed=0
for f in "$results"/*.trx; do
  [ -e "$f" ] || continue
  counters=$(grep -o '<Counters [^>]*>' "$f")
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")
  x=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")
  passed=$((passed + ${p:-0})); failed=$((failed + ${x:-0}))
done
rm -rf "$results"
if [ $status -ne 0 ] && [ $failed -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
exit $status
