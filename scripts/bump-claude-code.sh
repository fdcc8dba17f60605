#!/usr/bin/env bash
# Moves the newer Claude Code pin (the `claude-code-latest` alias package in tools/package.json) to the newest
# version the npm registry serves, reinstalls tools/, and reruns the Claude Code end-to-end tests (both the pinned
# 2.1.197 and the newest, plus the newest-only model-discovery and tool-search tests). Usage: scripts/bump-claude-code.sh [VERSION]   (default: `npm view @anthropic-ai/claude-code version`)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="${1:-$(npm view @anthropic-ai/claude-code version)}"
if [[ ! "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "unexpected version '$version'" >&2
  exit 1
fi

current="$(node -e 'const p=require(process.argv[1]);const s=(p.dependencies||{})["claude-code-latest"]||(p.devDependencies||{})["claude-code-latest"]||"";console.log(s.replace(/^npm:@anthropic-ai\/claude-code@/,""))' "$root/tools/package.json")"
echo "claude-code-latest: ${current:-unset} -> $version"
node -e '
const fs=require("fs");const file=process.argv[1];const version=process.argv[2];
const p=JSON.parse(fs.readFileSync(file,"utf8"));
const section=(p.devDependencies&&"claude-code-latest" in p.devDependencies)?"devDependencies":"dependencies";
p[section]=p[section]||{};p[section]["claude-code-latest"]="npm:@anthropic-ai/claude-code@"+version;
fs.writeFileSync(file,JSON.stringify(p,null,2)+"\n");' "$root/tools/package.json" "$version"

(cd "$root/tools" && npm install --no-audit --no-fund)
"$root/tools/node_modules/claude-code-latest/bin/claude.exe" --version

dotnet test "$root/tests/Melious.Gateway.FunctionalTests" -c Release --filter "FullyQualifiedName~ClaudeCodeTests|FullyQualifiedName~ClaudeCodeLatestTests"
