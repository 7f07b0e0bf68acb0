#!/usr/bin/env bash
# A chat completion. SWITCHYARD_API_KEY: an inference key (`make run` writes one to .switchyard/dev-key).
set -euo pipefail
BASE_URL="${SWITCHYARD_BASE_URL:-http://127.0.0.1:8080}"

curl -sS --fail-with-body "$BASE_URL/api/v1/chat/completions" \
  -H "Authorization: Bearer $SWITCHYARD_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{"model": "sim/fast", "messages": [{"role": "user", "content": "Say hello"}]}'
