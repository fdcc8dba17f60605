#!/usr/bin/env bash
# Compiles and lints the Bicep templates under infra/. Fails on any error and on any lint warning.
#
# The Bicep CLI comes from the NuGet package Azure.Bicep.CommandLine.linux-x64 (the only network access this
# script needs; everything else is offline). It is cached under .tools/bicep/<version>/ and reused, and a copy
# already in the NuGet global packages folder is used without downloading.
#
# Usage: scripts/check-infra.sh            (from any directory)
#        BICEP=/path/to/bicep scripts/check-infra.sh   (use a Bicep CLI you already have)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="$ROOT/infra"
BICEP_VERSION="0.49.2"
PACKAGE="azure.bicep.commandline.linux-x64"
TOOLS="$ROOT/.tools/bicep/$BICEP_VERSION"
NUGET_FLAT="${NUGET_FLAT_CONTAINER:-https://api.nuget.org/v3-flatcontainer}"

log() { printf 'check-infra: %s\n' "$*" >&2; }

unpack() { # unpack <nupkg> <dir>
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$1" -d "$2"
  else
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"
  fi
}

install_bicep() {
  local cached="${NUGET_PACKAGES:-$HOME/.nuget/packages}/$PACKAGE/$BICEP_VERSION"
  local found
  found="$(find "$TOOLS" -type f -name bicep 2>/dev/null | head -n 1 || true)"
  if [[ -n "$found" ]]; then
    printf '%s\n' "$found"
    return
  fi

  mkdir -p "$TOOLS"
  if [[ -d "$cached" ]]; then
    log "using Bicep $BICEP_VERSION from the NuGet cache ($cached)"
    cp -R "$cached/." "$TOOLS/"
  else
    local nupkg
    nupkg="$(mktemp "${TMPDIR:-/tmp}/bicep.XXXXXX.nupkg")"
    log "downloading $PACKAGE $BICEP_VERSION from $NUGET_FLAT"
    if ! curl -fsSL --retry 3 --retry-delay 2 -o "$nupkg" \
        "$NUGET_FLAT/$PACKAGE/$BICEP_VERSION/$PACKAGE.$BICEP_VERSION.nupkg"; then
      rm -f "$nupkg"
      log "ERROR: could not download $PACKAGE $BICEP_VERSION"
      exit 1
    fi
    unpack "$nupkg" "$TOOLS"
    rm -f "$nupkg"
  fi

  found="$(find "$TOOLS" -type f -name bicep | head -n 1 || true)"
  if [[ -z "$found" ]]; then
    log "ERROR: no 'bicep' executable inside $PACKAGE $BICEP_VERSION"
    exit 1
  fi
  chmod +x "$found"
  printf '%s\n' "$found"
}

BICEP="${BICEP:-$(install_bicep)}"
log "$("$BICEP" --version 2>&1 | head -n 1)"

# Bicep must not try to reach anything but the files here (no registry modules are used).
export BICEP_TRACING_ENABLED=false
export DOTNET_CLI_TELEMETRY_OPTOUT=1

OUT="$(mktemp -d "${TMPDIR:-/tmp}/check-infra.XXXXXX")"
trap 'rm -rf "$OUT"' EXIT

failed=0
problems=0

# run <label> <command...>: runs a Bicep command, echoes its diagnostics, counts errors and warnings.
run() {
  local label="$1"
  shift
  local output status=0
  output="$("$@" 2>&1)" || status=$?
  if [[ -n "$output" ]]; then
    printf '%s\n' "$output"
  fi
  local count
  count="$(printf '%s\n' "$output" | grep -Ec ' : (Error|Warning) ' || true)"
  if (( status != 0 || count > 0 )); then
    log "FAIL $label (exit $status, $count error/warning diagnostics)"
    failed=1
    problems=$((problems + count))
  else
    log "ok   $label"
  fi
}

run "bicep build infra/main.bicep" "$BICEP" build "$INFRA/main.bicep" --outfile "$OUT/main.json"

while IFS= read -r -d '' file; do
  run "bicep lint ${file#"$ROOT"/}" "$BICEP" lint "$file"
done < <(find "$INFRA" -name '*.bicep' -print0 | sort -z)

# The parameters file must be valid JSON and name only parameters main.bicep declares.
if [[ -f "$INFRA/main.parameters.json" && -f "$OUT/main.json" ]]; then
  if command -v jq >/dev/null 2>&1; then
    unknown="$(jq -r --slurpfile t "$OUT/main.json" \
      '.parameters | keys[] as $k | select(($t[0].parameters | has($k)) | not) | $k' "$INFRA/main.parameters.json")"
    if [[ -n "$unknown" ]]; then
      log "FAIL main.parameters.json names parameters main.bicep does not declare: $unknown"
      failed=1
    else
      log "ok   infra/main.parameters.json matches main.bicep"
    fi
  else
    python3 - "$INFRA/main.parameters.json" "$OUT/main.json" <<'PY' || failed=1
import json, sys
params = json.load(open(sys.argv[1]))["parameters"]
declared = json.load(open(sys.argv[2]))["parameters"]
unknown = [p for p in params if p not in declared]
if unknown:
    print("check-infra: FAIL main.parameters.json names undeclared parameters: " + ", ".join(unknown), file=sys.stderr)
    sys.exit(1)
print("check-infra: ok   infra/main.parameters.json matches main.bicep", file=sys.stderr)
PY
  fi
fi

if (( failed != 0 )); then
  log "FAILED ($problems error/warning diagnostics)"
  exit 1
fi
log "PASSED: infra/ builds and lints with zero warnings"
