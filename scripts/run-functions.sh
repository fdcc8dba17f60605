#!/usr/bin/env bash
# Runs the Azure Functions app locally, the `func start` of this repository: installs and starts Azurite (data in
# .data/azurite), builds src/Melious.Functions (Release), and runs it under Azure Functions Core Tools (`func`) when
# installed, else under the real host's offline build in ../shared/functions-host (run.sh; or MELIOUS_FUNCTIONS_HOST),
# else stops saying what to install. Creates a first API key if there is none and prints the Claude Code lines.
#
#   Melious__Upstream__BaseUrl=http://127.0.0.1:11434/v1 \
#   Melious__Models__Main=qwen3-coder:30b scripts/run-functions.sh
#
# Settings: the Values of local.settings.sample.json (src/Melious.Functions/local.settings.json instead, if you made
# one), overridden by the environment: the same Melious__* settings scripts/run-local.sh takes. MELIOUS_PORT sets the
# port (7071).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MELIOUS_ROOT"

port="${MELIOUS_PORT:-7071}"
data="$MELIOUS_ROOT/.data"
mkdir -p "$data"
app="$MELIOUS_ROOT/src/Melious.Functions/bin/Release/net10.0"

# Which host: Core Tools first (the real thing), else the offline build of the same host runtime.
runner=""
if command -v func >/dev/null 2>&1; then
  runner=func
elif host_dir="$(functions_host_dir)"; then
  runner=host
else
  cat >&2 <<'EOT'
run-functions: no Azure Functions host found. Install one of:
  - Azure Functions Core Tools v4 (`func`): https://learn.microsoft.com/azure/azure-functions/functions-run-local
    (e.g. npm install -g azure-functions-core-tools@4), or
  - the offline host build: a functions-host folder (build.sh, run.sh) at ../shared/functions-host next to this
    repository, or named by MELIOUS_FUNCTIONS_HOST.
Or run the same gateway without Functions: scripts/run-local.sh
EOT
  exit 1
fi

# The app settings: local.settings(.sample).json's Values, then the environment wins (as in run-local.sh).
settings="src/Melious.Functions/local.settings.json"
[[ -f "$settings" ]] || settings="local.settings.sample.json"
while IFS= read -r -d '' assignment; do
  name="${assignment%%=*}"
  if [[ -z "${!name+x}" ]]; then
    export "$assignment"
  fi
done < <(python3 - "$settings" <<'PY'
import json, sys
for k, v in json.load(open(sys.argv[1]))["Values"].items():
    if k.replace("_", "a").isalnum() and v != "":
        sys.stdout.write(f"{k}={v}\0")
PY
)

# Only Azurite is needed from tools/ here.
[[ -x "$MELIOUS_ROOT/tools/node_modules/.bin/azurite" ]] || ensure_node_tools

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 143' INT TERM

start_dev_azurite "$data"
# The host needs a full connection string for its blobs and the queue trigger; the gateway uses the same account.
dev_storage="$(azurite_connection_string 10000 10001 10002)"
[[ "${AzureWebJobsStorage:-UseDevelopmentStorage=true}" == "UseDevelopmentStorage=true" ]] && export AzureWebJobsStorage="$dev_storage"
[[ "${Melious__Storage__ConnectionString:-UseDevelopmentStorage=true}" == "UseDevelopmentStorage=true" ]] && export Melious__Storage__ConnectionString="$dev_storage"
export Melious__Usage__SpoolDirectory="${Melious__Usage__SpoolDirectory:-$data/usage-spool-functions}"

log "Building the Functions app and the admin CLI (Release)"
CONFIGURATION=Release scripts/build-functions.sh
[[ -f "$app/functions.metadata" ]] || { echo "run-functions: $app/functions.metadata missing after the build" >&2; exit 1; }
dotnet build src/Melious.Admin -c Release -nologo -v quiet -clp:ErrorsOnly -clp:NoSummary
admin() { Melious__Storage__ConnectionString="$Melious__Storage__ConnectionString" dotnet "$MELIOUS_ROOT/src/Melious.Admin/bin/Release/net10.0/melious-admin.dll" "$@"; }

if [[ "$runner" == func ]]; then
  log "Starting the app under Azure Functions Core Tools on http://127.0.0.1:$port"
  (cd "$app" && exec func host start --port "$port") &
else
  log "Starting the app under the Functions host in $host_dir on http://127.0.0.1:$port"
  FUNCTIONS_HOST_URLS="http://127.0.0.1:$port" "$host_dir/run.sh" "$app" &
fi
pids+=($!)
for _ in $(seq 1 600); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null && break
  kill -0 "${pids[-1]}" 2>/dev/null || { echo "run-functions: the host exited; see its output above" >&2; exit 1; }
  sleep 0.2
done
curl -fsS -o /dev/null "http://127.0.0.1:$port/" || { echo "run-functions: the host did not answer GET / within 2 minutes" >&2; exit 1; }

key="$(local_api_key "$data")"

print_claude_code_env "Functions app" "$port" "$key" "the host"
wait "${pids[-1]}"
