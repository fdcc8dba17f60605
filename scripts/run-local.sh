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
mkdir -p "$data/azurite"

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

# Azurite on its standard ports (so UseDevelopmentStorage=true works for the admin CLI too), unless one is running.
if (exec 3<>/dev/tcp/127.0.0.1/10002) 2>/dev/null; then
  log "Using the Azurite already listening on 127.0.0.1:10001/10002"
else
  log "Starting Azurite (data in .data/azurite)"
  "$MELIOUS_ROOT/tools/node_modules/.bin/azurite" --silent --skipApiVersionCheck --loose \
    --location "$data/azurite" --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 \
    >"$data/azurite.log" 2>&1 &
  pids+=($!)
  wait_for_port 10002 30 || { echo "Azurite did not start; see .data/azurite.log" >&2; exit 1; }
fi
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

# A first key, kept in .data/local-key (readable only by you) so the next run prints it again.
key_file="$data/local-key"
key=""
if [[ -s "$key_file" ]]; then
  key="$(cat "$key_file")"
  key_id="$(printf '%s' "$key" | sha256sum | cut -c1-16)"
  if ! admin keys list --format json | python3 -c 'import json,sys; k=sys.argv[1]; sys.exit(0 if any(x["key_id"]==k and x["enabled"] for x in json.load(sys.stdin)) else 1)' "$key_id"; then
    key=""
  fi
fi
if [[ -z "$key" ]]; then
  log "Creating a first API key (account local)"
  key="$(admin keys create --account local --name "local run" | tail -n 1)"
  (umask 077 && printf '%s' "$key" >"$key_file")
fi

cat <<EOT

Gateway ready. In the shell where you run Claude Code:

  export ANTHROPIC_BASE_URL=http://127.0.0.1:$port
  export ANTHROPIC_AUTH_TOKEN=$key
  export ANTHROPIC_API_KEY=""
  export ANTHROPIC_DEFAULT_OPUS_MODEL=claude-opus
  export ANTHROPIC_DEFAULT_SONNET_MODEL=claude-sonnet
  export ANTHROPIC_DEFAULT_HAIKU_MODEL=claude-haiku
  export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1

Press Ctrl-C to stop the gateway and Azurite.
EOT
wait "${pids[-1]}"
