#!/usr/bin/env bash
# Publishes the self-host as a Native AOT executable (for containers): ~100 MB peak RSS at 32 concurrent streams
# instead of ~170 MB, an ~80 ms start instead of ~0.7 s, for somewhat more CPU per request (docs/benchmarks.md).
# Needs clang (and zlib) for the native link, like any Native AOT publish on Linux.
#
# Usage: scripts/publish-aot.sh [OUT_DIR]     (default artifacts/aot; the executable is OUT_DIR/Melious.SelfHost)
# Run it like the self-host dll: configuration from environment variables (Melious__…, ASPNETCORE_URLS) and
# appsettings.json next to the executable. Same as scripts/publish-selfhost.sh --aot.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/publish-selfhost.sh" --aot "$@"
