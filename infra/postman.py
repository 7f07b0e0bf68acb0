"""The Postman collection (v2.1), generated from the committed openapi.json:

    python -m infra.postman          # writes infra/postman/switchyard.postman_collection.json

One folder a tag (FOLDERS names the known ones; a new tag gets a folder named after it), one request an
operation: bearer auth with `{{apiKey}}` for every request, URLs under `{{baseUrl}}` (http://127.0.0.1:8080,
`make run`'s), path parameters as Postman's `:name` variables, query parameters listed (the optional ones
disabled), JSON bodies from the document's examples, or, where it has none, the schema's required fields.
tests/test_postman.py regenerates it and fails when the committed file differs: run this after
`python -m functions.gateway.openapi`.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OPENAPI = ROOT / "openapi.json"
COLLECTION = ROOT / "infra" / "postman" / "switchyard.postman_collection.json"
SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
BASE_URL = "http://127.0.0.1:8080"
# tag → folder, in this order; tags not named here follow, each in a folder of its own name
FOLDERS = {
    "chat": "Inference: chat completions", "completions": "Inference: completions (legacy)",
    "messages": "Inference: Anthropic Messages", "responses": "Inference: Responses",
    "embeddings": "Inference: embeddings", "models": "Models", "providers": "Providers",
    "generation": "Generation stats", "keys": "Keys", "catalog": "Catalog", "routes": "Routing policies",
    "analytics": "Analytics", "rankings": "Rankings", "synthetic": "Synthetic data", "audit": "Audit",
    "governance": "Governance", "health": "Health",
}
METHODS = ("get", "post", "put", "patch", "delete")


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def sample(doc: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> Any:
    """A value the schema accepts, from its example, default or enum, else its required fields (by type)."""
    schema = _resolve(doc, schema)
    for key in ("example", "default"):
        if key in schema:
            return schema[key]
    if "enum" in schema:
        return schema["enum"][0]
    for union in ("anyOf", "oneOf"):
        if union in schema:
            options = [s for s in schema[union] if _resolve(doc, s).get("type") != "null"]
            return sample(doc, options[0], depth + 1) if options else None
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if depth > 6:
            return {}
        return {name: sample(doc, schema["properties"].get(name, {}), depth + 1)
                for name in schema.get("required", []) if name in schema.get("properties", {})}
    if kind == "array":
        return [sample(doc, schema.get("items", {}), depth + 1)] if schema.get("minItems") else []
    return {"integer": 1, "number": 1.0, "boolean": True}.get(kind, "string")


def _body(doc: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    example = content["example"] if "example" in content else sample(doc, content.get("schema", {}))
    return {"mode": "raw", "raw": json.dumps(example, indent=2, ensure_ascii=False),
            "options": {"raw": {"language": "json"}}}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _url(path: str, operation: dict[str, Any]) -> dict[str, Any]:
    params = operation.get("parameters", [])
    segments = [re.sub(r"^\{(.+)\}$", r":\1", s) for s in path.strip("/").split("/")]
    query = [{"key": p["name"], "value": _text(p.get("example", p.get("schema", {}).get("default", ""))),
              "description": p.get("description", ""), "disabled": not p.get("required", False)}
             for p in params if p["in"] == "query"]
    variables = [{"key": p["name"], "value": _text(p.get("example", "")), "description": p.get("description", "")}
                 for p in params if p["in"] == "path"]
    enabled = [q for q in query if not q["disabled"]]
    raw = "{{baseUrl}}/" + "/".join(segments) + ("?" + "&".join(f"{q['key']}={q['value']}" for q in enabled)
                                                 if enabled else "")
    url: dict[str, Any] = {"raw": raw, "host": ["{{baseUrl}}"], "path": segments}
    if query:
        url["query"] = query
    if variables:
        url["variable"] = variables
    return url


def _request(doc: dict[str, Any], method: str, path: str, operation: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {"method": method.upper(), "header": [], "url": _url(path, operation)}
    description = "\n\n".join(x for x in (operation.get("summary"), operation.get("description")) if x)
    if description:
        request["description"] = description
    body = _body(doc, operation)
    if body is not None:
        request["header"] = [{"key": "Content-Type", "value": "application/json"}]
        request["body"] = body
    return {"name": operation.get("summary") or operation.get("operationId") or f"{method.upper()} {path}",
            "request": request, "response": []}


def collection(doc: dict[str, Any]) -> dict[str, Any]:
    folders: dict[str, list[dict[str, Any]]] = {tag: [] for tag in FOLDERS}
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            if method in METHODS:
                tag = (operation.get("tags") or ["other"])[0]
                folders.setdefault(tag, []).append(_request(doc, method, path, operation))
    info = doc["info"]
    return {
        "info": {"_postman_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "switchyard/postman")), "name": info["title"],
                 "description": f"{info.get('description', '')}\n\nGenerated from openapi.json by "
                                "infra/postman.py (do not edit by hand). Set `apiKey` to a key: "
                                ".switchyard/dev-key for inference, .switchyard/admin-key for management.",
                 "schema": SCHEMA},
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{apiKey}}", "type": "string"}]},
        "variable": [{"key": "baseUrl", "value": BASE_URL, "type": "string"},
                     {"key": "apiKey", "value": "", "type": "string"}],
        "item": [{"name": FOLDERS.get(tag, tag), "item": items} for tag, items in folders.items() if items],
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(collection(doc), indent=1, ensure_ascii=False) + "\n"


def main() -> None:
    COLLECTION.parent.mkdir(parents=True, exist_ok=True)
    COLLECTION.write_text(render(json.loads(OPENAPI.read_text())))
    print(f"wrote {COLLECTION}", file=sys.stderr)


if __name__ == "__main__":
    main()
