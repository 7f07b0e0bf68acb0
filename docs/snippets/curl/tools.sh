#!/usr/bin/env bash
# Tool calling: the model answers with a call of get_weather (finish_reason "tool_calls").
set -euo pipefail
BASE_URL="${SWITCHYARD_BASE_URL:-http://127.0.0.1:8080}"

curl -sS --fail-with-body "$BASE_URL/api/v1/chat/completions" \
  -H "Authorization: Bearer $SWITCHYARD_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{
  "model": "sim/fast",
  "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
  "tools": [{"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
}'
