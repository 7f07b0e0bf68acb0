#!/usr/bin/env bash
# JSON with healing: sim/broken-json writes malformed JSON on purpose; the answer comes back repaired and
# checked against the schema, with "heal_status": "healed" and "heal": {"repairs": N, "schema_valid": true}.
set -euo pipefail
BASE_URL="${SWITCHYARD_BASE_URL:-http://127.0.0.1:8080}"

curl -sS --fail-with-body "$BASE_URL/api/v1/chat/completions" \
  -H "Authorization: Bearer $SWITCHYARD_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{
  "model": "sim/broken-json",
  "messages": [{"role": "user", "content": "The weather in Paris, as JSON"}],
  "response_format": {"type": "json_schema", "json_schema": {"name": "weather", "strict": true, "schema": {
    "type": "object", "additionalProperties": false, "required": ["city", "temperature_c"],
    "properties": {"city": {"type": "string"}, "temperature_c": {"type": "number"}}}}}
}'
