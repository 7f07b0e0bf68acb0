"""The OpenAPI document: FastAPI's, completed where FastAPI cannot see what a route does.

- Routes that read their body themselves (RawRoute: chat, messages, completions, responses, embeddings; the
  synthetic job routes, which take JSON or YAML) get their request body from the same models that parse it, with
  an example each.
- Validation fails with 400 and the error body `{"error": {"code", "message", "metadata"}}` here, never with
  FastAPI's 422 `HTTPValidationError`: every operation documents that 400 (and the error body for any other
  status) instead.
- `openapi.json` at the repository's root is this document, committed; tests/test_openapi.py fails when the two
  drift apart. Rewrite it with `python -m functions.gateway.openapi`.

Built when first asked for, not at import (a Lambda cold start does not pay for it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.json"
ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR = {
    "type": "object", "title": "Error", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message", "metadata"], "properties": {
        "code": {"type": "integer", "description": "The HTTP status"},
        "message": {"type": "string"},
        "metadata": {"type": "object", "additionalProperties": True, "properties": {
            "generation_id": {"type": "string", "description": "Also in the X-Generation-Id header"},
            "error_type": {"type": "string", "description": "The error's kind (shared/errors.py)"},
            "field": {"type": "string", "description": "400: the request field at fault"}}}}}},
    "example": {"error": {"code": 400, "message": "Invalid request: temperature: Input should be less than or "
                                                  "equal to 2", "metadata": {"field": "temperature",
                                                                              "error_type": "invalid_request",
                                                                              "generation_id": "gen-6a1f…"}}},
}
HI = [{"role": "user", "content": "Say hello"}]


def _model_schema(components: dict[str, Any], name: str, model: Any) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    components[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


def _chat(components: dict[str, Any]) -> dict[str, Any]:
    from shared.chat.schema import ChatRequest
    return _model_schema(components, "ChatRequest", ChatRequest)


def _messages(components: dict[str, Any]) -> dict[str, Any]:
    from shared.chat.anthropic_api import MessagesRequest
    return _model_schema(components, "MessagesRequest", MessagesRequest)


def _responses(components: dict[str, Any]) -> dict[str, Any]:
    from shared.chat.responses_api import ResponsesRequest
    return _model_schema(components, "ResponsesRequest", ResponsesRequest)


def _embeddings(components: dict[str, Any]) -> dict[str, Any]:
    from shared.chat.embeddings import EmbeddingRequest
    return _model_schema(components, "EmbeddingRequest", EmbeddingRequest)


def _completions(components: dict[str, Any]) -> dict[str, Any]:
    """The chat request's fields, with `prompt` for `messages` (shared/chat/legacy.py)."""
    _chat(components)
    chat = components["ChatRequest"]
    properties = {k: v for k, v in chat["properties"].items() if k != "messages"}
    properties = {"prompt": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"},
                                                            "minItems": 1, "maxItems": 1}],
                             "description": "One prompt a call"},
                  **properties,
                  "logprobs": {"type": "integer", "minimum": 0, "maximum": 20,
                               "description": "How many top log-probabilities each token gets"},
                  "echo": {"type": "boolean", "enum": [False]}, "best_of": {"type": "integer", "enum": [1]}}
    components["CompletionRequest"] = {"type": "object", "title": "CompletionRequest", "required": ["prompt"],
                                       "properties": properties, "additionalProperties": True}
    return {"$ref": "#/components/schemas/CompletionRequest"}


def _job(components: dict[str, Any]) -> dict[str, Any]:
    """A submission (`spec` or `template`, with overrides) or a bare spec (functions/gateway/routes/synthetic.py)."""
    from functions.gateway.routes.synthetic import Submission
    from shared.synthetic.spec import JobSpec

    spec = _model_schema(components, "JobSpec", JobSpec)
    submission = _model_schema(components, "JobSubmission", Submission)
    components["JobSubmission"]["properties"]["spec"] = {"anyOf": [spec, {"type": "null"}],
                                                         "description": "A job spec (Data Designer's format too)"}
    return {"anyOf": [submission, spec]}


# path → (the body's schema, an example, whether the answer may be an event stream)
BODIES: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], dict[str, Any], bool]] = {
    "/api/v1/chat/completions": (_chat, {"model": "sim/fast", "messages": HI}, True),
    "/api/v1/messages": (_messages, {"model": "sim/fast", "max_tokens": 256, "messages": HI}, True),
    "/api/v1/completions": (_completions, {"model": "sim/fast", "prompt": "Once upon a time", "max_tokens": 32},
                            True),
    "/api/v1/responses": (_responses, {"model": "sim/fast", "instructions": "Be brief.", "input": "Say hello"},
                          True),
    "/api/v1/embeddings": (_embeddings, {"model": "sim/embed", "input": ["the cat sat", "stocks fell"]}, False),
    "/api/v1/synthetic/jobs": (_job, {"template": "legal-clauses", "num_records": 5}, False),
    "/api/v1/synthetic/preview": (_job, {"template": "legal-clauses", "num_records": 2}, False),
}
INVALID = {"description": "Invalid request: `metadata.field` names the field", "content": {
    "application/json": {"schema": ERROR_REF}}}
OTHER = {"description": "Any other error, in the same shape", "content": {"application/json": {"schema": ERROR_REF}}}


def document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    for path, (schema_of, example, streams) in BODIES.items():
        operation = doc["paths"].get(path, {}).get("post")
        if operation is None:
            continue
        operation["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": schema_of(components), "example": example}}}
        if streams:
            ok = operation["responses"].setdefault("200", {"description": "Successful Response"})
            ok["description"] = "The answer (JSON), or with `stream: true` its server-sent events"
            ok.setdefault("content", {})["text/event-stream"] = {"schema": {"type": "string"}}
    for methods in doc["paths"].values():
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            if responses.pop("422", None) is not None or "requestBody" in operation:
                responses["400"] = INVALID
            responses.setdefault("default", OTHER)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    components["Error"] = ERROR
    return doc


def main() -> None:
    """Write the committed openapi.json (after changing a route or a request model)."""
    from functions.gateway.app import app

    COMMITTED.write_text(json.dumps(app.openapi(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {COMMITTED}", file=sys.stderr)


if __name__ == "__main__":
    main()
