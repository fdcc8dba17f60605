#!/usr/bin/env bash
# Runs the gateway locally: installs and starts Azurite (data in .data/azurite), builds and starts the self-host,
# creates a first API key if there is none, and prints the lines to paste into the shell that runs Claude Code.
#
#   Melious__Upstream__BaseUrl=http://127.0.0.1:11434/v1 \
#   Melious__Models__Main=qwen3-coder:30b scripts/run-local.sh
#
# Settings come from the environment (see the configuration table in README.md). MELIOUS_PORT sets the port (8080).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MELIOUS_ROOT"

port="${MELIOUS_PORT:-8080}"
data="$MELIOUS_ROOT/.data"
mkdir -p "$data"

if [[ -z "${Melious__Upstream__BaseUrl:-}" ]]; then
  export Melious__Upstream__BaseUrl="http://127.0.0.1:11434/v1"
  log "Melious__Upstream__BaseUrl is not set; using Ollama's default $Melious__Upstream__BaseUrl"
fi

ensure_node_tools

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

start_dev_azurite "$data"
export Melious__Storage__ConnectionString="${Melious__Storage__ConnectionString:-UseDevelopmentStorage=true}"
export Melious__Usage__SpoolDirectory="${Melious__Usage__SpoolDirectory:-$data/usage-spool}"

log "Building the self-host and the admin CLI (Release)"
dotnet build src/Melious.SelfHost -c Release -nologo -v quiet -clp:ErrorsOnly -clp:NoSummary
dotnet build src/Melious.Admin -c Release -nologo -v quiet -clp:ErrorsOnly -clp:NoSummary
admin() { dotnet "$MELIOUS_ROOT/src/Melious.Admin/bin/Release/net10.0/melious-admin.dll" "$@"; }

log "Starting the gateway on http://127.0.0.1:$port"
ASPNETCORE_URLS="http://127.0.0.1:$port" dotnet "$MELIOUS_ROOT/src/Melious.SelfHost/bin/Release/net10.0/Melious.SelfHost.dll" &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
  sleep 0.1
done

key="$(local_api_key "$data")"

print_claude_code_env Gateway "$port" "$key" "the gateway"
wait "${pids[-1]}"
