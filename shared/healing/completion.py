"""Healing applied to a chat completion: the assistant's content and tool-call arguments of every choice, each
told by its choice's finish_reason whether it was cut ("length") or finished.

For `json_schema` requests the healed value is also checked against the schema (jsonschema) and the result
reported on its own: healing never coerces a value to fit a schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from shared.chat.json_schema import SchemaUnusable, violations
from shared.healing.repair import HealResult, heal

Status = Literal["healed", "skipped", "failed"]
MAX_AUDIT = 100  # repair entries kept per call (the count is always exact)


@dataclass(slots=True)
class HealReport:
    status: Status = "skipped"
    repairs: int = 0
    audit: list[dict[str, Any]] = field(default_factory=list)  # kinds, offsets and paths: never content
    schema_valid: bool | None = None
    schema_errors: list[str] = field(default_factory=list)  # where the value breaks the schema, not the value

    def add(self, where: str, result: HealResult) -> None:
        if result.status == "failed" or self.status == "failed":
            self.status = "failed"
        elif result.status == "healed":
            self.status = "healed"
        self.repairs += len(result.repairs)
        room = MAX_AUDIT - len(self.audit)
        self.audit.extend({"at": where, **r.audit()} for r in result.repairs[:max(room, 0)])

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "repairs": self.repairs}
        if self.schema_valid is not None:
            out["schema_valid"] = self.schema_valid
            if self.schema_errors:
                out["schema_errors"] = self.schema_errors
        return out


def heal_completion(body: dict[str, Any], *, content: bool, tool_arguments: bool,
                    schema: dict[str, Any] | None = None) -> HealReport:
    """Heal every choice of an OpenAI `chat.completion` body in place; report what was done."""
    report = HealReport()
    for choice in body.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        text = message.get("content")
        truncated = choice.get("finish_reason") == "length"  # cut by the token limit, not finished
        if content and isinstance(text, str) and text:
            result = heal(text, truncated=truncated)
            report.add(f"choices[{index}].message.content", result)
            message["content"] = result.text
            if schema is not None and result.status != "failed":
                _check_schema(report, result.text, schema)
        calls = message.get("tool_calls") or () if tool_arguments else ()
        for n, call in enumerate(calls):
            function = call.get("function") or {}
            arguments = function.get("arguments")
            if isinstance(arguments, str) and arguments:
                result = heal(arguments, truncated=truncated)
                report.add(f"choices[{index}].message.tool_calls[{n}].function.arguments", result)
                function["arguments"] = result.text
    return report


def _check_schema(report: HealReport, text: str, schema: dict[str, Any]) -> None:
    """The value against the request's schema (found valid at the boundary: shared/chat/json_schema.py)."""
    try:
        errors = violations(schema, orjson.loads(text))
    except (SchemaUnusable, orjson.JSONDecodeError) as e:
        report.schema_valid = False
        reason = str(e) if isinstance(e, SchemaUnusable) else type(e).__name__
        report.schema_errors.append(f"schema could not be applied: {reason}")
        return
    valid = not errors
    report.schema_valid = valid if report.schema_valid is None else (report.schema_valid and valid)
    report.schema_errors.extend(f"{e.json_path}: {e.validator} failed" for e in errors[:5])
