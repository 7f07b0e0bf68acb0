#!/usr/bin/env bash
# Fallbacks: sim/down fails every call, so sim/fast answers ("model": "sim/fast"). The same through a routing
# policy: "model": "switchyard/fallback-demo" (sim/down, then sim/fast).
set -euo pipefail
BASE_URL="${SWITCHYARD_BASE_URL:-http://127.0.0.1:8080}"

curl -sS --fail-with-body "$BASE_URL/api/v1/chat/completions" \
  -H "Authorization: Bearer $SWITCHYARD_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{"model": "sim/down", "models": ["sim/down", "sim/fast"],
       "messages": [{"role": "user", "content": "Say hello"}]}'
