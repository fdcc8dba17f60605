#!/usr/bin/env bash
# Runs every test of the repository on a fresh machine: installs the Node tools and the Bicep CLI it needs,
# checks infra/, builds everything (the Functions app included), builds the real Azure Functions host, runs all test
# projects (the functional tests against the self-host and the Functions app under that host), and smoke-runs the benchmarks (the Native AOT pass included: it fails the run if a request it sent was
# not billed, or if the build cannot read its tables). Ends with one line: "tests: N passed, N failed, N skipped".
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MELIOUS_ROOT"

results="$MELIOUS_ROOT/artifacts/test-results"
rm -rf "$results"
mkdir -p "$results"

ensure_node_tools
if [[ -z "${MELIOUS_CHROMIUM:-}" ]]; then
  ensure_debian_packages /usr/bin/chromium:chromium tmux:tmux /usr/sbin/nginx:nginx
else
  ensure_debian_packages tmux:tmux /usr/sbin/nginx:nginx
fi

if [[ -x scripts/check-infra.sh ]]; then
  log "Checking infra/ with the Bicep CLI (build + lint, warnings fail)"
  scripts/check-infra.sh
fi

log "Building the solution (core, self-host, Functions app, admin CLI, tests, benchmarks)"
dotnet build Melious.Core.slnf -c Release -nologo -v quiet -clp:ErrorsOnly -clp:NoSummary

status=0

# The functional tests run the Functions app (built above, src/Melious.Functions/bin/Release/net10.0) under the real
# Azure Functions host, once per run: the offline build next to the repository (../shared/functions-host, built here
# once and cached), else Core Tools' func. Without either those tests are skipped (counted as skipped) and one line says so.
if host_dir="$(functions_host_dir)"; then
  log "Building the Azure Functions host ($host_dir/build.sh; cached between runs)"
  if "$host_dir/build.sh" >/dev/null; then
    export MELIOUS_FUNCTIONS_HOST="$host_dir"
  else
    echo "functions host: build.sh failed; the Functions host tests will fail" >&2
    status=1
  fi
elif command -v func >/dev/null 2>&1; then
  log "Running the Functions host tests under Azure Functions Core Tools ($(command -v func))"
else
  echo "SKIPPED: the Functions host tests (tests/Melious.Gateway.FunctionalTests *OnFunctionsHost, Functions/FunctionsHost*) — neither ../shared/functions-host (build.sh, run.sh; or MELIOUS_FUNCTIONS_HOST) nor Azure Functions Core Tools (func) is on this machine"
fi
for project in tests/Melious.Gateway.Tests tests/Melious.Gateway.FunctionalTests; do
  name="$(basename "$project")"
  log "Testing $name"
  if ! dotnet test "$project" -c Release --no-build -nologo \
      --logger "trx;LogFileName=$name.trx" --results-directory "$results" \
      --logger "console;verbosity=normal" 2>&1 | tee "$results/$name.log" | grep -vE '^\s+Passed |^\s*$'; then
    status=1
  fi
  if grep -qE '^(Failed!|Test Run Aborted)|error MSB|Test host process crashed' "$results/$name.log"; then
    status=1
  fi
done

if [[ -x scripts/smoke-cli.sh ]]; then
  log "melious CLI: the Native AOT single file and the .NET tool, each through the login/status/models round trip"
  scripts/smoke-cli.sh "$results" || status=1
fi

if [[ -x scripts/bench.sh ]]; then
  log "Benchmark smoke run (figures are printed, not asserted; the AOT pass checks usage rows)"
  scripts/bench.sh --quick || status=1
fi

# One summary line over all test runs (the trx files are authoritative).
python3 - "$results" <<'PY' || status=1
import glob, sys, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for path in glob.glob(sys.argv[1] + "/*.trx"):
    counters = ET.parse(path).getroot().find(".//{*}Counters")
    if counters is None:
        continue
    passed += int(counters.get("passed", 0))
    failed += int(counters.get("failed", 0)) + int(counters.get("error", 0)) + int(counters.get("timeout", 0)) + int(counters.get("aborted", 0))
    # xunit's trx leaves notExecuted at 0 and reports a skipped test as not executed (total - executed).
    skipped += max(int(counters.get("notExecuted", 0)), int(counters.get("total", 0)) - int(counters.get("executed", counters.get("total", 0))))
    # Name every failed test again next to the summary, so a log cut to its tail still says what failed.
    for result in ET.parse(path).getroot().findall(".//{*}UnitTestResult"):
        if result.get("outcome") not in ("Passed", "NotExecuted"):
            message = result.find(".//{*}ErrorInfo/{*}Message")
            # The message's first lines (a multi-line message names its details on the lines after the first).
            lines = (message.text or "").strip().splitlines() if message is not None else []
            print(f"FAILED {result.get('testName')}: " + "\n  ".join(line[:300] for line in lines[:8]))
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
PY
exit "$status"
