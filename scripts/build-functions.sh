#!/usr/bin/env bash
# Builds the Azure Functions app (src/Melious.Functions) into src/Melious.Functions/bin/$CONFIGURATION/net10.0, the
# folder the Functions host runs (scripts/run-functions.sh, the functional tests' FunctionsHostFixture). Its tests are
# part of tests/Melious.Gateway.FunctionalTests (Functions/ and the *OnFunctionsHost classes), which scripts/test.sh runs
# and counts.
#
# The Functions worker packages (Microsoft.Azure.Functions.Worker*, pinned in Directory.Packages.props) come only
# from nuget.org. Where the configured NuGet source lacks them, restore fails with NU1101/NU1102 (NU1603 for a
# pinned version that is missing); this script then prints one SKIPPED line naming them and exits 0. Any other
# restore or build failure fails the script.
#
# Usage: scripts/build-functions.sh            (from any directory; CONFIGURATION=Debug to change the config)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONFIGURATION="${CONFIGURATION:-Release}"
APP="src/Melious.Functions/Melious.Functions.csproj"
PROPS="$ROOT/Directory.Packages.props"

export DOTNET_CLI_TELEMETRY_OPTOUT=1
export DOTNET_NOLOGO=1

cd "$ROOT"
LOG="$(mktemp "${TMPDIR:-/tmp}/build-functions.XXXXXX")"
trap 'rm -f "$LOG"' EXIT

# pinned_version <package id>: the version Directory.Packages.props pins, or nothing.
pinned_version() {
  sed -n "s/.*<PackageVersion Include=\"$1\" Version=\"\([^\"]*\)\".*/\1/p" "$PROPS" | head -n 1
}

if ! dotnet restore "$APP" >>"$LOG" 2>&1; then
  codes="$(grep -Eo 'error NU[0-9]{4}' "$LOG" | awk '{print $2}' | sort -u || true)"
  unavailable_only=1
  if [[ -z "$codes" ]]; then
    unavailable_only=0
  fi
  for code in $codes; do
    case "$code" in
      NU1101 | NU1102 | NU1103 | NU1603) ;;
      *) unavailable_only=0 ;;
    esac
  done

  if (( unavailable_only )); then
    # Packages the restore could not find (NU1101/NU1102), and pinned versions it could not find (NU1603);
    # a NU1603 for a package that is not pinned here is only a knock-on effect and is left out.
    missing=()
    while IFS= read -r line; do
      id="${line%% *}"
      pinned_only="${line#* }"
      [[ -z "$id" ]] && continue
      version="$(pinned_version "$id")"
      if [[ "$pinned_only" == "pinned" && -z "$version" ]]; then
        continue
      fi
      missing+=("$id${version:+ $version}")
    done < <(
      {
        grep -Eo 'Unable to find package [A-Za-z0-9_.-]*[A-Za-z0-9_-]' "$LOG" | awk '{print $5 " any"}'
        grep -Eo 'but [A-Za-z0-9_.-]+ [0-9][^ ]* was not found' "$LOG" | awk '{print $2 " pinned"}'
      } | awk '!seen[$1]++'
    )
    list="$(printf '%s, ' "${missing[@]}")"
    echo "SKIPPED: src/Melious.Functions — the Azure Functions worker packages (${list%, }) are not on this NuGet source"
    exit 0
  fi

  cat "$LOG" >&2
  echo "build-functions: restore failed for a reason other than missing packages" >&2
  exit 1
fi

dotnet build "$APP" --no-restore -c "$CONFIGURATION" -nologo -v quiet -clp:ErrorsOnly -clp:NoSummary
