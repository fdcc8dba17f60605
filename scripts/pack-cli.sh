#!/usr/bin/env bash
# Packs `melious`, the user CLI, as a .NET tool package (Melious.Cli.<version>.nupkg).
# Install it with:  dotnet tool install --global Melious.Cli --add-source OUT_DIR
#
# Usage: scripts/pack-cli.sh [OUT_DIR]     (default artifacts/nupkg)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MELIOUS_ROOT"

out="${1:-$MELIOUS_ROOT/artifacts/nupkg}"
log "Packing src/Melious.Cli as a .NET tool into $out"
dotnet pack src/Melious.Cli -c Release -o "$out" -nologo -v quiet -clp:ErrorsOnly
ls "$out"/Melious.Cli.*.nupkg
