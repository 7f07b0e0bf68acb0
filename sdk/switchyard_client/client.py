"""`Client`: one method per operation of Switchyard's API under /api/v1, over HTTP alone (httpx).

    from switchyard_client import Client
    sy = Client()                       # SWITCHYARD_BASE_URL (default http://127.0.0.1:8080), SWITCHYARD_API_KEY
    key = sy.create_key("ci", limit=5)  # {"data": {...}, "key": "sk-sy-v1-..."}
    sy.put_provider({"id": "vllm", "kind": "openai", "base_url": "http://127.0.0.1:8000/v1"})

Every method returns the answer's JSON as the API documents it (the exports return bytes); an error answer
raises `APIError` with the error body's message, status and metadata. Inference (chat and the other fronts) is
best done with the official `openai` or `anthropic` SDK; the methods here are for scripts and checks, without
streaming.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Iterable, Literal, Mapping

import httpx

from switchyard_client._operations import Operation, call, operation, split_model

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
RUNNING = ("queued", "running")  # a job or a rankings run in any other status has ended


class APIError(Exception):
    """An error answer: `status`, `message` and `metadata` from the documented error body."""

    def __init__(self, status: int, message: str, metadata: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message, self.metadata = status, message, dict(metadata or {})


class ConnectionFailed(APIError):
    """The gateway could not be reached (status 0)."""


def _drop(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class Client:
    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, timeout: float = 120.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = (base_url or os.environ.get("SWITCHYARD_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("SWITCHYARD_API_KEY")
        headers = {"User-Agent": "switchyard-client/0.1"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, op: Operation, url: str, query: dict[str, str], body: Any) -> Any:
        try:
            answer = self._http.request(op.method, url, params=query or None,
                                        json=body if op.body and body is not None else None)
        except httpx.HTTPError as e:
            raise ConnectionFailed(0, f"cannot reach {self.base_url}: {e}") from e
        if answer.status_code >= 400:
            raise _error(answer)
        return answer.content if op.returns == "bytes" else answer.json()

    # -- keys -------------------------------------------------------------------------------------------
    @operation("POST", "/api/v1/keys", body=True)
    def create_key(self, name: str, *, management: bool = False, scopes: list[str] | None = None,
                   limit: float | None = None, limit_reset: Literal["daily", "weekly", "monthly"] | None = None,
                   expires_at: str | None = None, allowed_models: list[str] | None = None,
                   allowed_ips: list[str] | None = None, allowed_origins: list[str] | None = None,
                   rpm: int | None = None, rpd: int | None = None, tpm: int | None = None,
                   tags: list[str] | None = None, residency: list[str] | None = None,
                   zero_log: bool | None = None) -> dict[str, Any]:
        """A new key: `{"data": {...}, "key": secret}` (the secret is shown only here)."""
        return call(body=_drop(name=name, management=management or None, scopes=scopes, limit=limit,
                               limit_reset=limit_reset, expires_at=expires_at, allowed_models=allowed_models,
                               allowed_ips=allowed_ips, allowed_origins=allowed_origins, rpm=rpm, rpd=rpd, tpm=tpm,
                               tags=tags, residency=residency, zero_log=zero_log))

    @operation("GET", "/api/v1/keys", query={"offset", "management"})
    def list_keys(self, *, offset: int = 0, management: bool = False) -> dict[str, Any]:
        return call(query={"offset": offset or None, "management": management or None})

    @operation("GET", "/api/v1/keys/{key_hash}")
    def get_key(self, key_hash: str) -> dict[str, Any]:
        return call(path={"key_hash": key_hash})

    @operation("PATCH", "/api/v1/keys/{key_hash}", body=True)
    def update_key(self, key_hash: str, **changes: Any) -> dict[str, Any]:
        """Change fields (name, disabled, limit, allowed_models, scopes...; a None value clears one)."""
        return call(path={"key_hash": key_hash}, body=changes)

    @operation("DELETE", "/api/v1/keys/{key_hash}")
    def delete_key(self, key_hash: str) -> dict[str, Any]:
        return call(path={"key_hash": key_hash})

    @operation("POST", "/api/v1/keys/{key_hash}/rotate", body=True)
    def rotate_key(self, key_hash: str, *, grace_seconds: int | None = None) -> dict[str, Any]:
        return call(path={"key_hash": key_hash}, body=_drop(grace_seconds=grace_seconds))

    @operation("GET", "/api/v1/key")
    def current_key(self) -> dict[str, Any]:
        """The calling key: usage, limit and what remains."""
        return call()

    # -- catalog ----------------------------------------------------------------------------------------
    @operation("PUT", "/api/v1/catalog/providers", body=True)
    def put_provider(self, provider: Mapping[str, Any]) -> dict[str, Any]:
        """Add or replace a provider ({id, kind, base_url, api_key_env, ...}: the catalog file's shape)."""
        return call(body=dict(provider))

    @operation("DELETE", "/api/v1/catalog/providers/{provider_id}")
    def delete_provider(self, provider_id: str) -> dict[str, Any]:
        return call(path={"provider_id": provider_id})

    @operation("PUT", "/api/v1/catalog/models", body=True)
    def put_model(self, model: Mapping[str, Any]) -> dict[str, Any]:
        """Add or replace one endpoint of a model ({id, provider, upstream_model, context_length, pricing...})."""
        return call(body=dict(model))

    @operation("DELETE", "/api/v1/catalog/models/{author}/{slug}", query={"provider"})
    def delete_model(self, model_id: str, *, provider: str) -> dict[str, Any]:
        return call(path=split_model(model_id), query={"provider": provider})

    @operation("PATCH", "/api/v1/catalog/models/{author}/{slug}", body=True)
    def set_model_hidden(self, model_id: str, hidden: bool = True) -> dict[str, Any]:
        return call(path=split_model(model_id), body={"hidden": hidden})

    # -- routing policies (virtual models) --------------------------------------------------------------
    @operation("GET", "/api/v1/routes")
    def list_routes(self) -> dict[str, Any]:
        return call()

    @operation("PUT", "/api/v1/routes", body=True)
    def put_route(self, policy: Mapping[str, Any]) -> dict[str, Any]:
        return call(body=dict(policy))

    @operation("GET", "/api/v1/routes/{author}/{slug}")
    def get_route(self, model_id: str) -> dict[str, Any]:
        return call(path=split_model(model_id))

    @operation("DELETE", "/api/v1/routes/{author}/{slug}")
    def delete_route(self, model_id: str) -> dict[str, Any]:
        return call(path=split_model(model_id))

    # -- models and providers ---------------------------------------------------------------------------
    @operation("GET", "/api/v1/models", query={"supported_parameters", "output_modalities", "input_modalities"})
    def list_models(self, *, supported_parameters: str | list[str] | None = None,
                    output_modalities: str | list[str] | None = None,
                    input_modalities: str | list[str] | None = None) -> dict[str, Any]:
        return call(query={"supported_parameters": supported_parameters, "output_modalities": output_modalities,
                           "input_modalities": input_modalities})

    @operation("GET", "/api/v1/models/{author}/{slug}/endpoints")
    def model_endpoints(self, model_id: str) -> dict[str, Any]:
        return call(path=split_model(model_id))

    @operation("GET", "/api/v1/models/count")
    def count_models(self) -> dict[str, Any]:
        return call()

    @operation("GET", "/api/v1/models/user")
    def user_models(self) -> dict[str, Any]:
        """The models the calling key may call."""
        return call()

    @operation("GET", "/api/v1/models/licenses")
    def model_licenses(self) -> dict[str, Any]:
        """Each model's license terms, as the rankings and the synthetic-data gate read them."""
        return call()

    @operation("GET", "/api/v1/embeddings/models")
    def embedding_models(self) -> dict[str, Any]:
        return call()

    @operation("GET", "/api/v1/providers")
    def list_providers(self) -> dict[str, Any]:
        return call()

    @operation("GET", "/api/v1/generation", query={"id"})
    def get_generation(self, generation_id: str) -> dict[str, Any]:
        """A call's stats: tokens, cost, latency, provider, heal status."""
        return call(query={"id": generation_id})

    # -- analytics --------------------------------------------------------------------------------------
    @operation("GET", "/api/v1/analytics", free_query=True)
    def analytics(self, *, from_: str | None = None, to: str | None = None,
                  group_by: str | list[str] | None = None, granularity: str | None = None,
                  limit: int | None = None, **filters: str) -> dict[str, Any]:
        """Calls, tokens, cost, success rate and latency; filters such as key=, model=, lab=, app=."""
        return call(query={"from": from_, "to": to, "group_by": group_by, "granularity": granularity,
                           "limit": limit, **filters})

    @operation("GET", "/api/v1/analytics/export", free_query=True, returns="bytes")
    def export_analytics(self, *, format: Literal["csv", "parquet"] = "csv", from_: str | None = None,
                         to: str | None = None, group_by: str | list[str] | None = None,
                         granularity: str | None = None, **filters: str) -> bytes:
        return call(query={"format": format, "from": from_, "to": to, "group_by": group_by,
                           "granularity": granularity, **filters})

    @operation("GET", "/api/v1/activity", free_query=True)
    def activity(self, *, date: str | None = None, api_key_hash: str | None = None) -> dict[str, Any]:
        return call(query={"date": date, "api_key_hash": api_key_hash})

    @operation("GET", "/api/v1/credits")
    def credits(self) -> dict[str, Any]:
        return call()

    # -- rankings ---------------------------------------------------------------------------------------
    @operation("GET", "/api/v1/rankings", free_query=True)
    def rankings(self, *, by: Literal["model", "lab", "app"] | None = None, date: str | None = None) -> dict[str, Any]:
        return call(query={"by": by, "date": date})

    @operation("GET", "/api/v1/datasets/rankings-daily", free_query=True)
    def rankings_daily(self, *, start_date: str | None = None, end_date: str | None = None) -> dict[str, Any]:
        return call(query={"start_date": start_date, "end_date": end_date})

    @operation("POST", "/api/v1/rankings/runs", body=True)
    def run_rankings(self, date: str | None = None) -> dict[str, Any]:
        """Run the daily rankings for a day (yesterday by default): finished (local) or queued (AWS)."""
        return call(body=_drop(date=date))

    @operation("GET", "/api/v1/rankings/runs/{run_id}")
    def get_rankings_run(self, run_id: str) -> dict[str, Any]:
        return call(path={"run_id": run_id})

    def wait_for_rankings_run(self, run_id: str, *, poll: float = 1.0, timeout: float = 900.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.get_rankings_run(run_id)
            if run["data"].get("status") not in RUNNING or time.monotonic() > deadline:
                return run
            time.sleep(poll)

    # -- synthetic data ---------------------------------------------------------------------------------
    @operation("GET", "/api/v1/synthetic/jobs")
    def list_jobs(self) -> dict[str, Any]:
        return call()

    @operation("POST", "/api/v1/synthetic/jobs", body=True)
    def create_job(self, submission: Mapping[str, Any]) -> dict[str, Any]:
        """Start a job: {"template": name, "num_records": n} or {"spec": {...}} (or a bare spec)."""
        return call(body=dict(submission))

    @operation("GET", "/api/v1/synthetic/jobs/{job_id}")
    def get_job(self, job_id: str) -> dict[str, Any]:
        return call(path={"job_id": job_id})

    @operation("GET", "/api/v1/synthetic/jobs/{job_id}/rows", query={"offset", "limit", "failures"})
    def job_rows(self, job_id: str, *, offset: int | None = None, limit: int | None = None,
                 failures: bool | None = None) -> dict[str, Any]:
        return call(path={"job_id": job_id}, query={"offset": offset, "limit": limit, "failures": failures})

    @operation("GET", "/api/v1/synthetic/jobs/{job_id}/card", returns="bytes")
    def job_card(self, job_id: str) -> bytes:
        """The job's dataset card (README.md, Markdown)."""
        return call(path={"job_id": job_id})

    @operation("POST", "/api/v1/synthetic/jobs/{job_id}/review", body=True)
    def review_job(self, job_id: str, *, reviewer: str, reviewed: bool = True,
                   notes: str | None = None) -> dict[str, Any]:
        return call(path={"job_id": job_id}, body=_drop(reviewer=reviewer, reviewed=reviewed, notes=notes))

    @operation("POST", "/api/v1/synthetic/jobs/{job_id}/cancel")
    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return call(path={"job_id": job_id})

    @operation("POST", "/api/v1/synthetic/preview", body=True)
    def preview_job(self, submission: Mapping[str, Any]) -> dict[str, Any]:
        return call(body=dict(submission))

    @operation("GET", "/api/v1/synthetic/templates")
    def list_templates(self) -> dict[str, Any]:
        return call()

    @operation("GET", "/api/v1/synthetic/templates/{name}")
    def get_template(self, name: str) -> dict[str, Any]:
        return call(path={"name": name})

    def wait_for_job(self, job_id: str, *, poll: float = 1.0, timeout: float | None = None,
                     progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Poll a job until it has ended (or `timeout` seconds passed); `progress` sees each status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if progress:
                progress(job)
            if job.get("status") not in RUNNING or (deadline is not None and time.monotonic() > deadline):
                return job
            time.sleep(poll)

    # -- audit ------------------------------------------------------------------------------------------
    @operation("GET", "/api/v1/audit", free_query=True)
    def audit(self, *, from_: str | None = None, to: str | None = None, action: str | None = None,
              actor: str | None = None, target: str | None = None, limit: int | None = None,
              cursor: str | None = None) -> dict[str, Any]:
        """Management actions, newest first; `next_cursor` pages on."""
        return call(query={"from": from_, "to": to, "action": action, "actor": actor, "target": target,
                           "limit": limit, "cursor": cursor})

    @operation("GET", "/api/v1/audit/export", free_query=True, returns="bytes")
    def export_audit(self, *, format: Literal["jsonl", "csv"] = "jsonl", from_: str | None = None,
                     to: str | None = None, action: str | None = None, actor: str | None = None,
                     target: str | None = None) -> bytes:
        return call(query={"format": format, "from": from_, "to": to, "action": action, "actor": actor,
                           "target": target})

    @operation("GET", "/api/v1/audit/verify", free_query=True)
    def verify_audit(self, *, anchor: str | None = None) -> dict[str, Any]:
        return call(query={"anchor": anchor})

    @operation("GET", "/api/v1/audit/calls", free_query=True)
    def audit_calls(self, key: str, *, from_: str | None = None, to: str | None = None, limit: int | None = None,
                    cursor: str | None = None) -> dict[str, Any]:
        """A key's calls (by its hash): source IP, user agent, model, tokens, cost."""
        return call(query={"key": key, "from": from_, "to": to, "limit": limit, "cursor": cursor})

    # -- governance -------------------------------------------------------------------------------------
    @operation("GET", "/api/v1/governance")
    def governance(self) -> dict[str, Any]:
        return call()

    @operation("PUT", "/api/v1/governance", body=True)
    def put_governance(self, *, model_approval: Literal["on", "off"] | bool | None = None,
                       residency: list[str] | None = None, lift_residency: bool = False) -> dict[str, Any]:
        body = _drop(model_approval=model_approval, residency=residency)
        if lift_residency:
            body["residency"] = None
        return call(body=body)

    @operation("GET", "/api/v1/approvals", query={"status"})
    def list_approvals(self, *, status: str | None = None) -> dict[str, Any]:
        return call(query={"status": status})

    @operation("POST", "/api/v1/approvals/{author}/{slug}", body=True)
    def decide_approval(self, model_id: str, decision: Literal["approve", "reject"], *,
                        note: str | None = None) -> dict[str, Any]:
        return call(path=split_model(model_id), body=_drop(decision=decision, note=note))

    @operation("POST", "/api/v1/approvals/{author}/{slug}/revoke", body=True)
    def revoke_approval(self, model_id: str, *, note: str | None = None) -> dict[str, Any]:
        return call(path=split_model(model_id), body=_drop(note=note))

    # -- inference (no streaming here: use the openai or anthropic SDK for that) ------------------------
    @operation("POST", "/api/v1/chat/completions", body=True)
    def chat(self, model: str, messages: Iterable[Mapping[str, Any]], **params: Any) -> dict[str, Any]:
        return call(body=_inference({"model": model, "messages": list(messages), **params}))

    @operation("POST", "/api/v1/completions", body=True)
    def complete(self, model: str, prompt: str, **params: Any) -> dict[str, Any]:
        return call(body=_inference({"model": model, "prompt": prompt, **params}))

    @operation("POST", "/api/v1/messages", body=True)
    def messages(self, model: str, messages: Iterable[Mapping[str, Any]], *, max_tokens: int,
                 **params: Any) -> dict[str, Any]:
        return call(body=_inference({"model": model, "messages": list(messages), "max_tokens": max_tokens,
                                     **params}))

    @operation("POST", "/api/v1/responses", body=True)
    def responses(self, model: str, input: str | list[Any], **params: Any) -> dict[str, Any]:
        return call(body=_inference({"model": model, "input": input, **params}))

    @operation("POST", "/api/v1/embeddings", body=True)
    def embeddings(self, model: str, input: str | list[str], **params: Any) -> dict[str, Any]:
        return call(body={"model": model, "input": input, **params})


def _inference(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("stream"):
        raise ValueError("this client does not stream: use the openai or anthropic SDK for stream=True")
    return body


def _error(answer: httpx.Response) -> APIError:
    try:
        error = answer.json()["error"]
        return APIError(answer.status_code, str(error["message"]), error.get("metadata"))
    except (ValueError, KeyError, TypeError):
        text = answer.text.strip().splitlines()[0][:300] if answer.text.strip() else answer.reason_phrase
        return APIError(answer.status_code, text)
