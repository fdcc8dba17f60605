#!/usr/bin/env bash
# Publishes the self-host for deployment (containers, VMs), in one of two forms:
#   (default) the published JIT build: trimmed, ReadyToRun and self-contained. It still runs on the JIT with tiered
#             PGO, so its CPU per token is the JIT build's, but the trimmed framework maps fewer pages and the
#             precompiled code needs less JIT work: peak RSS at 64 paced streams ~113-124 MB instead of ~135 MB, and a
#             faster start (docs/benchmarks-paced.md, "Published JIT build"). No clang needed.
#   --aot     Native AOT (what scripts/publish-aot.sh runs): ~75 MB at 64 paced streams, an ~80 ms start, somewhat
#             more CPU per request (docs/benchmarks.md). Needs clang (and zlib) for the native link.
#
# Usage: scripts/publish-selfhost.sh [--aot] [OUT_DIR]
#        (default OUT_DIR artifacts/selfhost, with --aot artifacts/aot; the executable is OUT_DIR/Melious.SelfHost)
# Run it like the self-host dll: configuration from environment variables (Melious__…, ASPNETCORE_URLS) and
# appsettings.json next to the executable. No .NET runtime is needed on the target machine.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MELIOUS_ROOT"

mode=(--self-contained -p:PublishTrimmed=true -p:PublishReadyToRun=true)
what="trimmed, ReadyToRun, self-contained"
default_out="$MELIOUS_ROOT/artifacts/selfhost"
if [[ "${1:-}" == "--aot" ]]; then
  shift
  mode=(-p:PublishAot=true)
  what="as Native AOT"
  default_out="$MELIOUS_ROOT/artifacts/aot"
fi
out="${1:-$default_out}"
rid="$(machine_rid)"

log "Publishing src/Melious.SelfHost $what ($rid) into $out"
dotnet publish src/Melious.SelfHost -c Release -r "$rid" "${mode[@]}" -o "$out" -nologo -v quiet -clp:ErrorsOnly
test -x "$out/Melious.SelfHost"
echo "$out/Melious.SelfHost"
