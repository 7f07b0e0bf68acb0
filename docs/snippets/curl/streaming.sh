#!/usr/bin/env bash
# A streamed chat completion: server-sent events, `data: {chunk}` lines, a final usage chunk, `data: [DONE]`.
set -euo pipefail
BASE_URL="${SWITCHYARD_BASE_URL:-http://127.0.0.1:8080}"

curl -sS -N --fail-with-body "$BASE_URL/api/v1/chat/completions" \
  -H "Authorization: Bearer $SWITCHYARD_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{"model": "sim/fast", "stream": true, "messages": [{"role": "user", "content": "Tell me a story"}]}'
