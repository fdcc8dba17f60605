#!/usr/bin/env bash
# Runs the functional suite several times in a row with a CPU hog on every core (stress-ng --cpu N), to show that no
# test depends on the machine being quiet. Usage:
#
#   scripts/stress-tests.sh [runs] [--start-second S] [--no-hog] [--filter EXPR]
#
#   runs              how many runs of the suite (default 5)
#   --start-second S  start the first run when the UTC clock shows second S (e.g. 55: its first tests run across
#                     a minute boundary; every run of several minutes crosses more)
#   --no-hog          no stress-ng (a baseline)
#   --filter EXPR     a dotnet test filter instead of the whole suite
#
# Needs stress-ng (Debian: apt-get install stress-ng) and the Node tools (scripts/test.sh installs them). Writes one
# trx per run to artifacts/stress/ and appends a line per run to artifacts/stress-tests.log; exits non-zero if any
# run had a failed test.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MELIOUS_ROOT"

runs=5
start_second=""
hog=1
filter=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --start-second) start_second="$2"; shift 2 ;;
    --no-hog) hog=0; shift ;;
    --filter) filter="$2"; shift 2 ;;
    [0-9]*) runs="$1"; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

[[ -x tools/node_modules/.bin/azurite ]] || { echo "Azurite is not installed in tools/: run scripts/test.sh once" >&2; exit 1; }
cores="$(nproc)"
if [[ $hog == 1 ]]; then
  command -v stress-ng >/dev/null || { echo "stress-ng is required (apt-get install stress-ng)" >&2; exit 1; }
fi

project=tests/Melious.Gateway.FunctionalTests
results="$MELIOUS_ROOT/artifacts/stress"
summary="$MELIOUS_ROOT/artifacts/stress-tests.log"
mkdir -p "$results"

log "Building $project"
dotnet build "$project" -c Release -nologo -v quiet -clp:ErrorsOnly -clp:NoSummary

hog_pid=""
stop_hog() { [[ -n "$hog_pid" ]] && kill "$hog_pid" 2>/dev/null && wait "$hog_pid" 2>/dev/null; hog_pid=""; return 0; }
trap stop_hog EXIT
if [[ $hog == 1 ]]; then
  stress-ng --cpu "$cores" --quiet &
  hog_pid=$!
  log "CPU hog: stress-ng --cpu $cores (pid $hog_pid)"
fi

status=0
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
for ((run = 1; run <= runs; run++)); do
  if [[ -n "$start_second" && $run == 1 ]]; then
    while [[ "$(date -u +%-S)" != "$start_second" ]]; do sleep 0.2; done
  fi
  name="stress-$stamp-$run"
  started="$(date -u +%FT%TZ)"
  begin=$SECONDS
  log "Run $run of $runs (started $started)"
  args=("$project" -c Release --no-build -nologo --logger "trx;LogFileName=$name.trx" --results-directory "$results")
  [[ -n "$filter" ]] && args+=(--filter "$filter")
  dotnet test "${args[@]}" >"$results/$name.log" 2>&1 || true
  seconds=$((SECONDS - begin))
  load="$(cut -d' ' -f1-3 /proc/loadavg)"
  line="$(python3 - "$results/$name.trx" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("no results (the test host crashed?)")
    sys.exit(1)
c = root.find(".//{*}Counters")
failed = sum(int(c.get(k, 0)) for k in ("failed", "error", "timeout", "aborted"))
names = [r.get("testName") for r in root.findall(".//{*}UnitTestResult") if r.get("outcome") not in ("Passed", "NotExecuted")]
# xunit's trx leaves skipped tests out of "executed" (its notExecuted counter stays 0): skipped = total - executed.
skipped = int(c.get("total", 0)) - int(c.get("executed", 0))
print(f"{c.get('passed')} passed, {failed} failed, {skipped} skipped" + "".join(f"\n  FAILED {n}" for n in names))
sys.exit(1 if failed or int(c.get("passed", 0)) == 0 else 0)
PY
)" || status=1
  printf '%s run %d/%d%s: %s in %d s (load average at the end %s)\n' "$started" "$run" "$runs" "$([[ $hog == 1 ]] && echo ", stress-ng --cpu $cores")" "$line" "$seconds" "$load" | tee -a "$summary"
done

stop_hog
exit "$status"
