"""The column DAG: what each column reads (its Jinja templates' variables, a subcategory's parent), and an
order to make them in, as levels whose columns may run at the same time. A reference to no column, or a
cycle, is an error naming it."""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from shared.errors import BadRequestError

# Templates come from job specs: a sandbox (no attribute access to Python internals), undefined names raise.
ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


@lru_cache(maxsize=1024)
def template(text: str) -> jinja2.Template:
    return ENV.from_string(text)


def references(text: str, where: str) -> set[str]:
    """The top-level variables a template reads (`{{ person.city }}` reads `person`)."""
    try:
        return set(meta.find_undeclared_variables(ENV.parse(text)))
    except jinja2.TemplateSyntaxError as e:
        raise BadRequestError(f"{where}: the Jinja template does not parse: {e.message} (line {e.lineno})",
                              metadata={"column": where.split("'")[1] if "'" in where else where}) from None


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
