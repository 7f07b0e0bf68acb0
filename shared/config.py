"""Process settings, read once from the environment (tests override `get_settings` by clearing its cache)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_", extra="ignore")

    # Resource names: on AWS the template passes them to the function; locally infra/local.py sets them.
    keys_table: str = Field("switchyard-keys", validation_alias=AliasChoices("KEYS_TABLE", "SWITCHYARD_KEYS_TABLE"))
    usage_table: str = Field("switchyard-usage",
                             validation_alias=AliasChoices("USAGE_TABLE", "SWITCHYARD_USAGE_TABLE"))
    counters_table: str = Field("switchyard-counters",
                                validation_alias=AliasChoices("COUNTERS_TABLE", "SWITCHYARD_COUNTERS_TABLE"))
    catalog_table: str = Field("switchyard-catalog",
                               validation_alias=AliasChoices("CATALOG_TABLE", "SWITCHYARD_CATALOG_TABLE"))
    audit_table: str = Field("switchyard-audit",
                             validation_alias=AliasChoices("AUDIT_TABLE", "SWITCHYARD_AUDIT_TABLE"))
    data_bucket: str = Field("switchyard-data", validation_alias=AliasChoices("DATA_BUCKET", "SWITCHYARD_DATA_BUCKET"))
    # The usage lake: s3://bucket[/prefix] or a directory; unset: s3://<data bucket>/ (shared/lake/store.py)
    lake_uri: str | None = None
    rankings_uri: str | None = None  # where rankings are published; unset: s3://<data bucket>/

    # Rankings (shared/rankings/): the minimum traffic to be ranked and the anti-gaming thresholds.
    rankings_min_calls: Annotated[int, Field(ge=1)] = 10
    rankings_source_share: Annotated[float, Field(gt=0, lt=1)] = 0.5
    rankings_source_floor: Annotated[int, Field(ge=0)] = 20
    rankings_repeat_threshold: Annotated[int, Field(ge=1)] = 50
    rankings_concentration_share: Annotated[float, Field(gt=0, le=1)] = 0.95
    rankings_concentration_min_calls: Annotated[int, Field(ge=1)] = 100
    rankings_app_min_calls: Annotated[int, Field(ge=1)] = 10

    # Synthetic data (shared/synthetic/): the gateway URL jobs call (unset locally: this process's own PORT),
    # the SQS queue of row groups (AWS; unset: jobs run in the process that accepted them), the most rows
    # a job may ask for, and the queue's maxReceiveCount (a row group's last try fails its job).
    gateway_url: str | None = None
    synthetic_queue_url: str | None = None
    synthetic_max_records: Annotated[int, Field(ge=1)] = 1_000_000
    synthetic_max_receives: Annotated[int, Field(ge=1)] = 3

    # The key pepper: a literal (local stack, tests) or a Secrets Manager secret id (AWS).
    pepper: str | None = None
    pepper_secret_id: str | None = Field(None, validation_alias=AliasChoices("PEPPER_SECRET_ID",
                                                                            "SWITCHYARD_PEPPER_SECRET_ID"))

    config: Path | None = None  # SWITCHYARD_CONFIG: YAML adding providers and models

    # What a provider added through the catalog API (management key) may use; SWITCHYARD_CONFIG and
    # infra/load_catalog.py are the operator's own paths and unrestricted. Key env vars: comma-separated names or
    # NAME_PREFIX* patterns (unset: the key env vars of the built-in catalog's vendors; empty: none), never
    # SWITCHYARD_* or AWS_*. Secrets: only names under vendor_secret_prefix (the template's VendorSecretPrefix).
    # Addresses: never link-local or cloud metadata; loopback and private ones only with allow_private.
    catalog_api_key_envs: str | None = None
    catalog_api_allow_private: bool = False
    vendor_secret_prefix: str = "switchyard/vendors/"

    # Proxies in front of the gateway (comma-separated CIDRs) whose X-Forwarded-For names the client; unset:
    # the client is the socket's peer, or API Gateway's sourceIp on Lambda, and no header is believed.
    trusted_proxies: str | None = None
    max_body_bytes: Annotated[int, Field(gt=0)] = 6 * 1024 * 1024  # Lambda's synchronous payload limit
    key_cache_seconds: Annotated[float, Field(ge=0, le=60)] = 10.0  # the documented revocation delay
    keepalive_seconds: Annotated[float, Field(gt=0)] = 5.0  # SSE comment while the upstream is silent
    connect_timeout_seconds: Annotated[float, Field(gt=0)] = 5.0
    first_byte_timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    total_timeout_seconds: Annotated[float, Field(gt=0)] = 600.0
    # On Lambda a call must also end this long before the invocation does, so that it is metered in time.
    lambda_deadline_margin_seconds: Annotated[float, Field(ge=0)] = 2.5
    # Hostile upstreams: a non-streamed body over this is refused (502); a stream's lines are capped one by
    # one (its total is bounded by the call's deadline).
    max_upstream_response_bytes: Annotated[int, Field(gt=0)] = 32 * 1024 * 1024
    max_upstream_event_bytes: Annotated[int, Field(gt=0)] = 4 * 1024 * 1024
    # Resilience: after every candidate failed, the whole plan is retried (jittered exponential backoff,
    # honouring Retry-After up to max_retry_wait_seconds) at most max_retries times. Breakers: see routing/breaker.py.
    max_retries: Annotated[int, Field(ge=0, le=5)] = 1
    retry_backoff_seconds: Annotated[float, Field(ge=0)] = 0.2
    max_retry_wait_seconds: Annotated[float, Field(ge=0)] = 5.0
    max_retry_after_seconds: Annotated[int, Field(ge=1)] = 60  # an upstream's Retry-After is capped at this
    breaker_consecutive_failures: Annotated[int, Field(ge=1)] = 5
    breaker_error_rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    breaker_min_calls: Annotated[int, Field(ge=1)] = 20
    breaker_window_seconds: Annotated[float, Field(gt=0)] = 60.0
    breaker_cooldown_seconds: Annotated[float, Field(gt=0)] = 30.0
    usage_retention_days: Annotated[int, Field(gt=0)] = 400
    meter_flush_seconds: Annotated[float, Field(gt=0)] = 0.05
    # Metrics (shared/metrics/, GET /metrics; EMF to CloudWatch on Lambda): SWITCHYARD_METRICS=false counts
    # nothing and answers /metrics 404; public: no key needed (else a management key with `metrics:read`);
    # key_labels: a `key` label (the key's id) on the per-call counters; max_apps: apps with their own label.
    metrics: bool = True
    metrics_public: bool = False
    metrics_key_labels: bool = False
    metrics_max_apps: Annotated[int, Field(ge=0, le=1000)] = 20
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
