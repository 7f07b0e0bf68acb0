#!/usr/bin/env bash
# Create an inference key with the management API: a $5 monthly limit, sim models only. Its secret ("key")
# is shown once. SWITCHYARD_ADMIN_KEY: a management key (`make run` writes one to .switchyard/admin-key).
set -euo pipefail
BASE_URL="${SWITCHYARD_BASE_URL:-http://127.0.0.1:8080}"

curl -sS --fail-with-body -X POST "$BASE_URL/api/v1/keys" \
  -H "Authorization: Bearer $SWITCHYARD_ADMIN_KEY" \
  -H "Content-Type: application/json" \
  -d '{"name": "my-app", "limit": 5, "limit_reset": "monthly", "allowed_models": ["sim/*"]}'
