#!/usr/bin/env bash
# Smoke test of both `melious` distributions: publishes the Native AOT single file (scripts/publish-cli.sh; skipped
# with a SKIPPED line when clang is missing), packs and installs the .NET tool (scripts/pack-cli.sh, then
# `dotnet tool install Melious.Cli --add-source …` into a temporary tool path), and runs, with each executable, the
# functional CLI round trip (login/status/models/logout against the self-host, Azurite and a scripted upstream),
# `tools install claude-code` on every path, and `launch claude-code`'s environment, exit codes and signal forwarding.
# Needs the functional tests built (Release).
#
# Usage: scripts/smoke-cli.sh [RESULTS_DIR]   (trx files land there, named melious-cli-aot.trx / melious-cli-tool.trx)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MELIOUS_ROOT"

results="${1:-$MELIOUS_ROOT/artifacts/test-results}"
mkdir -p "$results"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0

round_trip() { # NAME EXECUTABLE
  log "CLI round trip with the $1 build: $2"
  "$2" --version >/dev/null || { echo "FAILED: $2 --version" >&2; status=1; return; }
  if ! MELIOUS_CLI_UNDER_TEST="$2" dotnet test tests/Melious.Gateway.FunctionalTests -c Release --no-build -nologo \
      --filter "FullyQualifiedName~Cli.CliTests|FullyQualifiedName~Cli.ToolsInstallTests|FullyQualifiedName~Cli.LaunchEnvironmentTests" \
      --logger "trx;LogFileName=melious-cli-$1.trx" --results-directory "$results" 2>&1 | tee "$results/melious-cli-$1.log" | grep -E '^(Passed!|Failed!)|error'; then
    status=1
  fi
  grep -qE '^Passed!' "$results/melious-cli-$1.log" || status=1
}

if have_clang; then
  if aot="$(scripts/publish-cli.sh "$work/aot")"; then
    log "Native AOT single file: $(du -h "$aot" | cut -f1)"
    round_trip aot "$aot"
  else
    echo "FAILED: Native AOT publish of the CLI" >&2
    status=1
  fi
else
  echo "SKIPPED: Native AOT CLI (clang, needed to link a Native AOT executable, is not installed)"
fi

if scripts/pack-cli.sh "$work/nupkg" >/dev/null && \
   dotnet tool install Melious.Cli --tool-path "$work/tools" --add-source "$work/nupkg" >/dev/null; then
  round_trip tool "$work/tools/melious"
else
  echo "FAILED: packing or installing the Melious.Cli .NET tool" >&2
  status=1
fi

if [[ $status -eq 0 ]]; then echo "CLI smoke: PASSED"; else echo "CLI smoke: FAILED"; fi
exit "$status"
