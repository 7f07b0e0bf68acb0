"""Create an inference key with the management API, through the SDK in sdk/ (`pip install ./sdk`):
a $5 monthly limit, sim models only. SWITCHYARD_ADMIN_KEY: a management key."""
import os

from switchyard_client import Client

with Client(os.environ.get("SWITCHYARD_BASE_URL", "http://127.0.0.1:8080"),
            os.environ["SWITCHYARD_ADMIN_KEY"]) as switchyard:
    created = switchyard.create_key("my-app", limit=5, limit_reset="monthly", allowed_models=["sim/*"])
print(created["data"]["hash"], created["key"])  # the secret is shown only once
