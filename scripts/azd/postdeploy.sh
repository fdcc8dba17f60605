#!/bin/sh
# azd postdeploy hook (POSIX sh; Windows runs postdeploy.ps1). After `azd up` / `azd deploy`:
#   1. seeds the model tables with melious-admin: the default upstream, a catalog entry per tier model and the
#      opus/sonnet/haiku tier mapping, from the azd environment (skipped when those values have not changed since the last successful seeding, so a
#      later `azd deploy` does not undo tier changes made with melious-admin);
#   2. creates a first API key, only if the apikeys table has none;
#   3. prints the lines that point Claude Code at the function app.
# melious-admin runs with `dotnet run --project src/Melious.Admin` and authenticates to the storage account with
# your own Azure login (DefaultAzureCredential: azd, Azure CLI, ...); infra grants you Storage Table Data
# Contributor on the account (AZURE_PRINCIPAL_ID). Nothing here needs a storage key.
#
# Optional settings (azd env set NAME VALUE):
#   MELIOUS_FIRST_KEY_ACCOUNT   account of the first API key (default: default)
#   MELIOUS_FIRST_KEY_NAME      name of the first API key (default: claude-code)
#   MELIOUS_SKIP_SEED=true      skip step 1
set -eu

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ADMIN_PROJECT="$ROOT/src/Melious.Admin"

say() { printf '%s\n' "$*"; }
note() { printf 'postdeploy: %s\n' "$*" >&2; }
fail() { printf 'postdeploy: %s\n' "$*" >&2; exit 1; }

# value NAME: the variable from the hook's environment (azd exports the environment's values), else from azd.
value() {
  eval "current=\${$1:-}"
  if [ -z "$current" ] && command -v azd >/dev/null 2>&1; then
    current="$(azd env get-value "$1" 2>/dev/null || true)"
  fi
  printf '%s' "$current"
}

require() {
  result="$(value "$1")"
  [ -n "$result" ] || fail "$1 is not set in the azd environment; run 'azd provision' first"
  printf '%s' "$result"
}

FUNCTION_HOST="$(require MELIOUS_FUNCTION_HOST)"
TABLE_ENDPOINT="$(require MELIOUS_STORAGE_TABLE_ENDPOINT)"
QUEUE_ENDPOINT="$(require MELIOUS_STORAGE_QUEUE_ENDPOINT)"
BASE_URL="$(require MELIOUS_UPSTREAM_BASE_URL)"
PROTOCOL="$(value MELIOUS_UPSTREAM_PROTOCOL)"
PROTOCOL="${PROTOCOL:-openai}"
FLAVOR="$(value MELIOUS_UPSTREAM_FLAVOR)"
FLAVOR="${FLAVOR:-vllm}"
MAIN_MODEL="$(require MELIOUS_MODEL_MAIN)"
SECONDARY_MODEL="$(value MELIOUS_MODEL_SECONDARY)"
SECONDARY_MODEL="${SECONDARY_MODEL:-$MAIN_MODEL}"
LIGHTWEIGHT_MODEL="$(value MELIOUS_MODEL_LIGHTWEIGHT)"
LIGHTWEIGHT_MODEL="${LIGHTWEIGHT_MODEL:-$SECONDARY_MODEL}"
HAS_UPSTREAM_KEY=false
[ -n "$(value MELIOUS_UPSTREAM_API_KEY)" ] && HAS_UPSTREAM_KEY=true
KEY_ACCOUNT="$(value MELIOUS_FIRST_KEY_ACCOUNT)"
KEY_ACCOUNT="${KEY_ACCOUNT:-default}"
KEY_NAME="$(value MELIOUS_FIRST_KEY_NAME)"
KEY_NAME="${KEY_NAME:-claude-code}"

# melious-admin talks to the deployed account with the operator's Entra identity (no client id: not the app's MI).
export Melious__Storage__TableServiceUri="$TABLE_ENDPOINT"
export Melious__Storage__QueueServiceUri="$QUEUE_ENDPOINT"
export Melious__Storage__CreateIfMissing=false
unset Melious__Storage__ConnectionString Melious__Storage__ClientId Melious__Storage__AccountName Melious__Storage__TablePrefix || true
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

say "postdeploy: building melious-admin"
dotnet build "$ADMIN_PROJECT" --nologo -v quiet >/dev/null || fail "could not build src/Melious.Admin"

admin() {
  dotnet run --no-build --project "$ADMIN_PROJECT" -- "$@"
}

# The operator's role assignment was just created; data-plane RBAC can take a few minutes to apply.
admin_with_patience() {
  attempt=1
  while ! admin "$@"; do
    [ "$attempt" -lt 20 ] || fail "melious-admin $* kept failing; check that you hold Storage Table Data Contributor on the account"
    say "postdeploy: storage not reachable with your login yet (role assignments can take minutes to apply); retrying in 15 s ($attempt/20)" >&2
    attempt=$((attempt + 1))
    sleep 15
  done
}

# A catalog entry per tier model. `models set` merges, so an existing entry keeps its fields; for a model it knows,
# melious-admin suggests the energy parameters (active/total parameters, quantization), which are then applied so
# usage rows carry energy estimates as they do when the gateway seeds an empty catalog itself.
ensure_catalog_entry() {
  out="$(admin models set "$1")"
  energy="$(printf '%s\n' "$out" | sed -n 's/.*e\.g\. \(--active-params [0-9.]* --total-params [0-9.]* --quant-bits [0-9]*\).*/\1/p' | head -n 1)"
  if [ -n "$energy" ]; then
    # Word splitting of $energy is intended: it holds the option list.
    # shellcheck disable=SC2086
    admin models set "$1" $energy >/dev/null
  fi
  say "postdeploy: catalog entry $1${energy:+ ($energy)}"
}

SEED_SIGNATURE="$BASE_URL|$PROTOCOL|$FLAVOR|$HAS_UPSTREAM_KEY|$MAIN_MODEL|$SECONDARY_MODEL|$LIGHTWEIGHT_MODEL"
if [ "$(value MELIOUS_SKIP_SEED)" = "true" ]; then
  say "postdeploy: MELIOUS_SKIP_SEED=true, not touching the model tables"
elif [ "$(value MELIOUS_SEEDED)" = "$SEED_SIGNATURE" ]; then
  say "postdeploy: model tables already hold these upstream and tier settings; not reseeding (azd env set MELIOUS_SEEDED '' to force)"
else
  say "postdeploy: seeding the model tables (default upstream $BASE_URL, tiers $MAIN_MODEL / $SECONDARY_MODEL / $LIGHTWEIGHT_MODEL)"
  if [ "$HAS_UPSTREAM_KEY" = true ]; then
    admin_with_patience models set-default --base-url "$BASE_URL" --protocol "$PROTOCOL" --flavor "$FLAVOR" --api-key-ref config:Melious:Upstream:ApiKey
  else
    admin_with_patience models set-default --base-url "$BASE_URL" --protocol "$PROTOCOL" --flavor "$FLAVOR"
  fi
  seen=" "
  for model in "$MAIN_MODEL" "$SECONDARY_MODEL" "$LIGHTWEIGHT_MODEL"; do
    case "$seen" in *" $model "*) continue ;; esac
    seen="$seen$model "
    ensure_catalog_entry "$model"
  done
  admin tiers set opus "$MAIN_MODEL"
  admin tiers set sonnet "$SECONDARY_MODEL"
  admin tiers set haiku "$LIGHTWEIGHT_MODEL"
  if command -v azd >/dev/null 2>&1; then
    azd env set MELIOUS_SEEDED "$SEED_SIGNATURE" >/dev/null || true
  fi
fi

KEYS_JSON="$(admin_with_patience keys list --format json)"
case "$KEYS_JSON" in
  *'{'*)
    API_KEY=""
    say "postdeploy: API keys exist already; not creating another"
    ;;
  *)
    say "postdeploy: creating the first API key (account $KEY_ACCOUNT, name $KEY_NAME)"
    CREATED="$(admin keys create --account "$KEY_ACCOUNT" --name "$KEY_NAME")"
    API_KEY="$(printf '%s\n' "$CREATED" | awk 'NF { last = $0 } END { print last }')"
    [ -n "$API_KEY" ] || fail "melious-admin keys create printed no key"
    ;;
esac

GATEWAY_URL="https://$FUNCTION_HOST"
say ""
say "Melious gateway deployed: $GATEWAY_URL"
say ""
say "Point Claude Code at it (paste into your shell, or put the same variables in the \"env\" object of ~/.claude/settings.json):"
say ""
say "export ANTHROPIC_BASE_URL=$GATEWAY_URL"
if [ -n "$API_KEY" ]; then
  say "export ANTHROPIC_AUTH_TOKEN=$API_KEY"
else
  say "export ANTHROPIC_AUTH_TOKEN=<your key>  # new one: dotnet run --project src/Melious.Admin -- keys create --account $KEY_ACCOUNT --name <name>"
fi
say "export ANTHROPIC_API_KEY=\"\""
say "export ANTHROPIC_DEFAULT_OPUS_MODEL=claude-opus"
say "export ANTHROPIC_DEFAULT_SONNET_MODEL=claude-sonnet"
say "export ANTHROPIC_DEFAULT_HAIKU_MODEL=claude-haiku"
say ""
say "claude-opus, claude-sonnet and claude-haiku are routed by tier to $MAIN_MODEL, $SECONDARY_MODEL and $LIGHTWEIGHT_MODEL;"
say "change a tier with: dotnet run --project src/Melious.Admin -- tiers set sonnet <model>"
if [ -n "$API_KEY" ]; then
  say "The key is shown only now; only its hash is stored."
fi
say ""
say "Streaming check (each SSE line with its arrival time; the first should come long before the last):"
say "curl -sN $GATEWAY_URL/v1/messages -H \"x-api-key: \$ANTHROPIC_AUTH_TOKEN\" -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' -d '{\"model\":\"claude-sonnet\",\"max_tokens\":256,\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Count to 30.\"}]}' | while IFS= read -r l; do printf '%s %s\\n' \"\$(date +%s.%N)\" \"\$l\"; done"
