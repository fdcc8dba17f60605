#!/usr/bin/env bash
# Publishes `melious`, the user CLI, as one Native AOT executable (no .NET runtime needed on the user's machine).
# Needs clang for the native link, like any Native AOT publish on Linux.
#
# Usage: scripts/publish-cli.sh [OUT_DIR]     (default artifacts/cli; the executable is OUT_DIR/melious)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MELIOUS_ROOT"

out="${1:-$MELIOUS_ROOT/artifacts/cli}"
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) rid=linux-x64 ;;
  Linux-aarch64 | Linux-arm64) rid=linux-arm64 ;;
  Darwin-arm64) rid=osx-arm64 ;;
  Darwin-x86_64) rid=osx-x64 ;;
  *) echo "publish-cli: unsupported platform $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac

log "Publishing src/Melious.Cli as a Native AOT single file ($rid) into $out"
dotnet publish src/Melious.Cli -c Release -r "$rid" -p:PublishAot=true -p:PublishSingleFile=false \
  -p:StripSymbols=true -o "$out" -nologo -v quiet -clp:ErrorsOnly
test -x "$out/melious"
echo "$out/melious"
