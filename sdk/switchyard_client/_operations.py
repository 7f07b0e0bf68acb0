"""How an SDK method names the API operation it calls, so that a test can hold every method against
`openapi.json` (tests/test_sdk_openapi.py) and the method's body cannot send what its declaration does not say.

A method decorated with `@operation("GET", "/api/v1/keys", query={"offset", "management"})` returns
`call(...)` (its path parameters, query and body); the decorator sends it and returns the answer's JSON (or its
bytes, for `returns="bytes"`). `call` is typed `Any`, so that each method can declare what it really returns. `free_query=True` marks the routes that read their query themselves, which openapi.json does
not list (analytics, audit, rankings): their names come from the route's own checks, and the server refuses an
unknown one with a 400.
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass, field
from typing import Any, Callable, Literal


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    query: frozenset[str] = frozenset()
    body: bool = False
    free_query: bool = False
    returns: Literal["json", "bytes"] = "json"

    @property
    def path_params(self) -> list[str]:
        return [name for _, name, _, _ in string.Formatter().parse(self.path) if name]


@dataclass(slots=True)
class Call:
    """What one method call sends: path parameters, query (None values left out) and JSON body."""

    path: dict[str, str] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    body: Any = None


def call(*, path: dict[str, str] | None = None, query: dict[str, Any] | None = None, body: Any = None) -> Any:
    """What a decorated method returns: the decorator sends it (typed Any: the method's annotation is the answer's)."""
    return Call(path or {}, query or {}, body)


def operation(method: str, path: str, *, query: set[str] | frozenset[str] = frozenset(), body: bool = False,
              free_query: bool = False, returns: Literal["json", "bytes"] = "json") -> Callable:
    op = Operation(method, path, frozenset(query), body, free_query, returns)

    def decorate(build: Callable[..., Call]) -> Callable:
        @functools.wraps(build)
        def send(self, *args: Any, **kwargs: Any) -> Any:
            call = build(self, *args, **kwargs)
            if not isinstance(call, Call):
                raise TypeError(f"{build.__name__} must return call(...)")
            query = {k: _text(v) for k, v in call.query.items() if v is not None}
            undeclared = set(query) - op.query
            if undeclared and not op.free_query:
                raise TypeError(f"{build.__name__} sends query parameters it does not declare: {sorted(undeclared)}")
            if set(call.path) != set(op.path_params):
                raise TypeError(f"{build.__name__}: path parameters {sorted(call.path)} for {op.path}")
            if call.body is not None and not op.body:
                raise TypeError(f"{build.__name__} sends a body to {op.method} {op.path}, which takes none")
            url = op.path.format(**{k: _segment(v) for k, v in call.path.items()})
            return self._send(op, url, query, call.body)

        send.__operation__ = op  # type: ignore[attr-defined]
        return send

    return decorate


def operations(cls: type) -> dict[str, Operation]:
    """Each SDK method's operation, by the method's name."""
    return {name: getattr(member, "__operation__") for name in dir(cls)
            if (member := getattr(cls, name, None)) is not None and hasattr(member, "__operation__")}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _segment(value: str) -> str:
    from urllib.parse import quote

    return quote(str(value), safe=":@")


def split_model(model_id: str) -> dict[str, str]:
    """`author/slug` as the two path parameters the model routes take."""
    author, sep, slug = model_id.partition("/")
    if not sep or not author or not slug:
        raise ValueError(f"a model id is author/slug, not {model_id!r}")
    return {"author": author, "slug": slug}
