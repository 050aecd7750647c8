#!/usr/bin/env bash
# Coverage-guided fuzzing of one target for a bounded time: bash tests/fuzz.sh TARGET SECONDS
#   TARGET: packet | config | pcap | alg | cgn   (see tests/Fuzz/README.md)
# Installs afl++ (Debian) and the SharpFuzz instrumentation tool when missing, builds tests/Fuzz
# in Release, instruments the assemblies under test, runs afl-fuzz for SECONDS, prints afl's
# execs/s and edges, and copies every crash to tests/Fuzz/findings/TARGET/<sha256 prefix>.
#
# SharpFuzz 2.3.0 with Debian bookworm's afl++ 4.04c: the program uses
# Fuzzer.OutOfProcess.Run (a forkserver that survives stack overflows by running inputs in a
# child process). afl cannot see instrumentation in a .NET assembly, hence AFL_SKIP_BIN_CHECK=1;
# -m none because the CLR reserves far more virtual memory than afl's default limit.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-}
seconds=${2:-60}
case "$target" in
  packet|pcap|alg|cgn) instrument=(Natd.Dataplane.dll) ;;
  config) instrument=(natd.dll YamlDotNet.dll) ;;
  *) echo "usage: bash tests/fuzz.sh packet|config|pcap|alg|cgn SECONDS" >&2; exit 2 ;;
esac
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "tests/fuzz.sh: SECONDS must be a positive integer" >&2
  exit 2
fi

fuzz=tests/Fuzz
tools=$fuzz/.tools
work=$fuzz/.work/$target
out=$fuzz/.work/bin-$target

if ! command -v afl-fuzz >/dev/null; then
  echo "== installing afl++"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq afl++ >/dev/null
fi
if [ ! -x "$tools/sharpfuzz" ]; then
  echo "== installing SharpFuzz.CommandLine 2.3.0 into $tools"
  dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$tools" >/dev/null
fi

echo "== building $fuzz (Release) into $out"
rm -rf "$out"
dotnet build "$fuzz" -c Release -nologo -warnaserror -clp:NoSummary -o "$out" >/dev/null
for dll in "${instrument[@]}"; do
  echo "== instrumenting $dll"
  "$tools/sharpfuzz" "$out/$dll" >/dev/null
done

mkdir -p "$work"
rm -rf "$work/out"
export AFL_SKIP_BIN_CHECK=1          # .NET assemblies carry no afl instrumentation marker
export AFL_NO_UI=1                   # plain status lines, not the curses screen
export AFL_SKIP_CPUFREQ=1            # shared machine: no CPU governor to tune
export AFL_NO_AFFINITY=1             # other jobs share the cores; do not pin
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1   # core_pattern is the host's business
export AFL_AUTORESUME=0
echo "== afl-fuzz $target for ${seconds}s (work dir $work)"
set +e
afl-fuzz -i "$fuzz/corpus/$target" -o "$work/out" -V "$seconds" -t 10000 -m none \
  -- "$out/Natd.Fuzz" "$target" > "$work/afl.log" 2>&1
rc=$?
set -e
stats=$work/out/default/fuzzer_stats
if [ ! -f "$stats" ]; then
  echo "tests/fuzz.sh: afl-fuzz did not start (exit $rc); last lines of $work/afl.log:" >&2
  tail -n 30 "$work/afl.log" >&2
  exit 1
fi
stat() { awk -F' *: *' -v k="$1" '$1 == k {print $2}' "$stats"; }
echo "== $target: $(stat execs_done) executions, $(stat execs_per_sec) execs/s, edges $(stat edges_found)/$(stat total_edges), corpus $(stat corpus_count), crashes $(stat saved_crashes), hangs $(stat saved_hangs)"

findings=$fuzz/findings/$target
n=0
for f in "$work"/out/default/crashes/id:*; do
  [ -e "$f" ] || continue
  mkdir -p "$findings"
  name=$(sha256sum "$f" | cut -c1-16)
  cp "$f" "$findings/$name"
  n=$((n + 1))
done
# afl's dry run skips a seed that crashes and counts no crash for it: a seed the code under test
# now fails on would otherwise pass unnoticed. Each is a finding too.
while IFS= read -r seed; do
  [ -n "$seed" ] || continue
  f=$(ls "$work"/out/default/queue/"$seed" 2>/dev/null || true)
  [ -z "$f" ] && f=$(ls "$fuzz/corpus/$target/${seed##*orig:}" 2>/dev/null || true)
  [ -n "$f" ] || continue
  echo "== seed ${seed##*orig:} crashes the target (afl skipped it in its dry run)"
  mkdir -p "$findings"
  name=$(sha256sum "$f" | cut -c1-16)
  cp "$f" "$findings/$name"
  n=$((n + 1))
done < <(sed -n "s/.*Test case '\([^']*\)' results in a crash, skipping.*/\1/p" "$work/afl.log" | sort -u)
if [ "$n" -gt 0 ]; then
  echo "== $n crash(es) copied to $findings/ (replay without afl: dotnet build tests/Fuzz -c Release && dotnet tests/Fuzz/bin/Release/net10.0/Natd.Fuzz.dll replay $target FILE)"
else
  echo "== no crashes"
fi
