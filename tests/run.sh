#!/usr/bin/env bash
# The test command: install what the tests need, restore, build with warnings as errors, and run
# every test project (unit, property, replay, port contract, and end-to-end in network
# namespaces). Needs root for the namespace tests. Ends with one "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "tests/run.sh: the end-to-end tests need root (network namespaces, AF_PACKET); run: sudo bash tests/run.sh" >&2
  exit 1
fi
bash control/install-deps.sh
dotnet restore Dataplane.sln -nologo
dotnet build Dataplane.sln -c Release --no-restore -nologo -warnaserror -clp:NoSummary
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
for proj in tests/Architecture.Tests tests/Dataplane.Tests tests/EndToEnd.Tests; do
  dotnet test "$proj" -c Release --no-build -nologo --blame-hang-timeout 5m 2>&1 | tee -a "$log" || status=1
done
passed=$(grep -oE 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -oE 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
if [ "$passed" -eq 0 ]; then status=1; fi
echo "tests: $passed passed, $failed failed"
exit $status
