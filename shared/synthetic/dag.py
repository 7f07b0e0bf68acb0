"""The column DAG: what each column reads (its Jinja templates' variables, a subcategory's parent), and an
order to make them in, as levels whose columns may run at the same time. A reference to no column, or a
cycle, is an error naming it."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Iterable

import jinja2
import jinja2.nodes
import jinja2.sandbox
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from shared.errors import BadRequestError

MAX_NODES = 600  # of a template's syntax tree (Data Designer's own limit)
MAX_LOOP_DEPTH = 2  # nested for-loops
MAX_RANGE = 1000  # items of one range()
MAX_OUTPUT = 512_000  # characters a render may produce (Data Designer's own limit)
MAX_VALUE = 100_000  # characters (or digits) one `*` or `**` may produce


class Limited(ImmutableSandboxedEnvironment):
    """Jinja's sandbox (no attribute access to Python internals, nothing mutable) with bounds on work: a
    template from a job spec runs once a row, in the process that serves the gateway. `*` and `**` are checked
    before they compute (no `'x' * 10**9`), range() is short, loops nest at most twice, output is capped."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and isinstance(right, int) and isinstance(left, (str, list, tuple)):
            left, right = right, left
        if operator == "*" and isinstance(left, int) and isinstance(right, (str, list, tuple)):
            if left * len(right) > MAX_VALUE:
                raise jinja2.sandbox.SecurityError(f"a repetition of over {MAX_VALUE} items")
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 \
                and abs(left) > 1 and right * math.log10(abs(left)) > MAX_VALUE:
            raise jinja2.sandbox.SecurityError(f"a power of over {MAX_VALUE} digits")
        return super().call_binop(context, operator, left, right)


def _range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise jinja2.sandbox.SecurityError(f"range() is limited to {MAX_RANGE} items here")
    return r


ENV = Limited(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
ENV.globals["range"] = _range


@lru_cache(maxsize=1024)
def template(text: str) -> jinja2.Template:
    return ENV.from_string(text)


def render(text: str, values: dict[str, Any]) -> str:
    """The template rendered over a row; SecurityError past MAX_OUTPUT characters (stopped there)."""
    out, size = [], 0
    for piece in template(text).generate(values):
        size += len(piece)
        if size > MAX_OUTPUT:
            raise jinja2.sandbox.SecurityError(f"the template renders over {MAX_OUTPUT} characters")
        out.append(piece)
    return "".join(out)


def _check_shape(tree: Any, where: str) -> None:
    nodes = list(tree.find_all(jinja2.nodes.Node))
    if len(nodes) > MAX_NODES:
        raise BadRequestError(f"{where}: the template is too large ({len(nodes)} syntax nodes, at most {MAX_NODES})",
                              metadata={"column": where})

    def depth(node: Any) -> int:
        inner = max((depth(child) for child in node.iter_child_nodes()), default=0)
        return inner + 1 if isinstance(node, jinja2.nodes.For) else inner

    if depth(tree) > MAX_LOOP_DEPTH:
        raise BadRequestError(f"{where}: for-loops nest at most {MAX_LOOP_DEPTH} deep in a template",
                              metadata={"column": where})


def references(text: str, where: str) -> set[str]:
    """The top-level variables a template reads (`{{ person.city }}` reads `person`)."""
    try:
        tree = ENV.parse(text)
    except jinja2.TemplateSyntaxError as e:
        raise BadRequestError(f"{where}: the Jinja template does not parse: {e.message} (line {e.lineno})",
                              metadata={"column": where.split("'")[1] if "'" in where else where}) from None
    _check_shape(tree, where)
    return set(meta.find_undeclared_variables(tree)) - set(ENV.globals)


def levels(depends: dict[str, set[str]], known: Iterable[str] = ()) -> list[list[str]]:
    """Columns in levels: each reads only columns of earlier levels (or `known` ones, such as seed columns).
    Raises BadRequestError naming an unknown reference or the columns of a cycle."""
    known = set(known)
    names = set(depends)
    for name in depends:  # declaration order: the first offender is the first a reader meets
        missing = sorted(depends[name] - names - known)
        if missing:
            raise BadRequestError(f"column {name!r} references {missing[0]!r}, which is no column of this job",
                                  metadata={"column": name, "reference": missing[0]})
    remaining = {n: deps & names for n, deps in depends.items()}
    out: list[list[str]] = []
    while remaining:
        ready = [n for n, deps in remaining.items() if not deps]
        if not ready:
            cycle = _cycle(remaining)
            raise BadRequestError(f"columns reference each other in a cycle: {' -> '.join(cycle)}",
                                  metadata={"cycle": cycle})
        out.append(ready)
        for n in ready:
            del remaining[n]
        for deps in remaining.values():
            deps.difference_update(ready)
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of a graph in which every node has an edge (what is left when no node is ready)."""
    start = next(iter(graph))
    path, seen = [start], {start: 0}
    while True:
        step = sorted(graph[path[-1]])[0]
        if step in seen:
            return path[seen[step]:] + [step]
        seen[step] = len(path)
        path.append(step)
