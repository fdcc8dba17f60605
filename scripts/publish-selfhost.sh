#!/usr/bin/env bash
# Publishes the self-host for deployment with the JIT (containers, VMs): trimmed, ReadyToRun and self-contained. It
# still runs on the JIT with tiered PGO, so its CPU per token is the JIT build's, but the trimmed framework maps fewer
# pages and the precompiled code needs less JIT work: peak RSS at 64 paced streams ~120 MB instead of ~145 MB, and a
# faster start (docs/benchmarks-paced.md, "Published JIT build"). No clang needed, unlike scripts/publish-aot.sh.
#
# Usage: scripts/publish-selfhost.sh [OUT_DIR]   (default artifacts/selfhost; the executable is OUT_DIR/Melious.SelfHost)
# Run it like the self-host dll: configuration from environment variables (Melious__…, ASPNETCORE_URLS) and
# appsettings.json next to the executable. No .NET runtime is needed on the target machine.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MELIOUS_ROOT"

out="${1:-$MELIOUS_ROOT/artifacts/selfhost}"
rid="$(machine_rid)"

log "Publishing src/Melious.SelfHost trimmed, ReadyToRun, self-contained ($rid) into $out"
dotnet publish src/Melious.SelfHost -c Release -r "$rid" --self-contained -p:PublishTrimmed=true -p:PublishReadyToRun=true \
  -o "$out" -nologo -v quiet -clp:ErrorsOnly
test -x "$out/Melious.SelfHost"
echo "$out/Melious.SelfHost"
