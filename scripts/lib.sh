#!/usr/bin/env bash
# Shared helpers for the scripts in this folder. Source it: . "$(dirname "$0")/lib.sh"

MELIOUS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MELIOUS_ROOT
export DOTNET_CLI_TELEMETRY_OPTOUT=1
export DOTNET_NOLOGO=1
export DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }

# Installs the Node tools (Azurite, Claude Code, the Anthropic TypeScript SDK) into tools/node_modules
# when they are missing or tools/package.json changed since the last install.
ensure_node_tools() {
  local dir="$MELIOUS_ROOT/tools"
  local stamp="$dir/node_modules/.melious-installed"
  if [[ -f "$stamp" && "$stamp" -nt "$dir/package.json" && -x "$dir/node_modules/.bin/azurite" ]]; then
    return 0
  fi
  command -v npm >/dev/null || { echo "npm is required (Node.js 18+)" >&2; return 1; }
  log "Installing Node tools (azurite, @anthropic-ai/claude-code, @anthropic-ai/sdk) into tools/"
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error >&2)
  touch "$stamp"
}

# True when a clang (plain or versioned, as Debian installs it) is on PATH: Native AOT links with it.
have_clang() {
  local c
  for c in clang clang-{10..30}; do
    command -v "$c" >/dev/null && return 0
  done
  return 1
}

# Prints this machine's .NET runtime identifier (linux-x64, linux-arm64) for a self-contained or Native AOT publish.
machine_rid() {
  case "$(uname -m)" in
    x86_64) echo linux-x64 ;;
    aarch64 | arm64) echo linux-arm64 ;;
    *) echo "unsupported machine $(uname -m)" >&2; return 1 ;;
  esac
}

# wait_for_port PORT SECONDS
wait_for_port() {
  local port="$1" seconds="${2:-30}" i
  for ((i = 0; i < seconds * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# azurite_connection_string BLOB QUEUE TABLE
azurite_connection_string() {
  printf 'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:%s/devstoreaccount1;QueueEndpoint=http://127.0.0.1:%s/devstoreaccount1;TableEndpoint=http://127.0.0.1:%s/devstoreaccount1;' "$1" "$2" "$3"
}

# Prints the folder of the real Azure Functions host's offline build (build.sh, run.sh): MELIOUS_FUNCTIONS_HOST, or
# ../shared/functions-host next to the repository (its place in a fresh CI clone). Fails when there is none.
functions_host_dir() {
  local dir="${MELIOUS_FUNCTIONS_HOST:-$MELIOUS_ROOT/../shared/functions-host}"
  [[ -x "$dir/run.sh" && -x "$dir/build.sh" ]] || return 1
  (cd "$dir" && pwd -P)
}

# ensure_debian_packages CMD:PACKAGE ...: installs each Debian package whose command is missing (as root only;
# otherwise says what to install). The dashboard's browser tests drive /usr/bin/chromium through Playwright's
# ExecutablePath (never a bundled browser); the interactive CLI tests run Claude Code under tmux; the paced bench
# (bench.sh, also its --quick smoke) proxies through nginx as an anchor.
ensure_debian_packages() {
  local pair cmd pkg missing=()
  for pair in "$@"; do
    cmd="${pair%%:*}" pkg="${pair#*:}"
    command -v "$cmd" >/dev/null 2>&1 || [[ -x "$cmd" ]] || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null; then
    log "Installing ${missing[*]} (apt-get install -y) for the browser, terminal and bench tests"
    apt-get install -y "${missing[@]}" >&2 || { apt-get update >&2 && apt-get install -y "${missing[@]}" >&2; }
  else
    echo "missing Debian packages: ${missing[*]} (sudo apt-get install -y ${missing[*]}); the browser, terminal and bench tests need them" >&2
  fi
}

# start_dev_azurite DATA: Azurite on its standard ports 10000-10002 (so UseDevelopmentStorage=true works for the
# admin CLI too), data in DATA/azurite, log in DATA/azurite.log; unless one is already listening. Appends its pid to
# the caller's `pids` array (the caller stops it on exit).
start_dev_azurite() {
  local data="$1"
  if (exec 3<>/dev/tcp/127.0.0.1/10002) 2>/dev/null; then
    log "Using the Azurite already listening on 127.0.0.1:10000-10002"
    return 0
  fi
  log "Starting Azurite (data in .data/azurite)"
  mkdir -p "$data/azurite"
  "$MELIOUS_ROOT/tools/node_modules/.bin/azurite" --silent --skipApiVersionCheck --loose \
    --location "$data/azurite" --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 \
    >"$data/azurite.log" 2>&1 &
  pids+=($!)
  wait_for_port 10002 30 || { echo "Azurite did not start; see .data/azurite.log" >&2; exit 1; }
}

# local_api_key DATA: prints the first local API key, kept in DATA/local-key (readable only by you) so that every
# local run (self-host or Functions) prints the same one; creates it (account local) when there is none or it was
# revoked. Needs the caller's `admin` function (melious-admin against the local storage).
local_api_key() {
  local key_file="$1/local-key" key="" key_id
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
  printf '%s' "$key"
}

# print_claude_code_env WHAT PORT KEY STOPS: the lines to paste into the shell that runs Claude Code.
print_claude_code_env() {
  cat <<EOT

$1 ready. In the shell where you run Claude Code:

  export ANTHROPIC_BASE_URL=http://127.0.0.1:$2
  export ANTHROPIC_AUTH_TOKEN=$3
  export ANTHROPIC_API_KEY=""
  export ANTHROPIC_DEFAULT_OPUS_MODEL=claude-opus
  export ANTHROPIC_DEFAULT_SONNET_MODEL=claude-sonnet
  export ANTHROPIC_DEFAULT_HAIKU_MODEL=claude-haiku
  export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1

Press Ctrl-C to stop $4 and Azurite.
EOT
}
