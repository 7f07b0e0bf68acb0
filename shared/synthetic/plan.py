"""A spec made ready to run: the column levels of its DAG, its seed rows, the concurrency window of each
model alias, the row groups; and what a judge is asked and answers."""

from __future__ import annotations

from typing import Any

from shared.errors import BadRequestError
from shared.synthetic import dag
from shared.synthetic.client import Window
from shared.synthetic.samplers import cell_rng
from shared.synthetic.spec import (ExpressionColumn, IndexRange, JobSpec, LLMJudgeColumn, LLMStructuredColumn,
                                   LLMTextColumn, SamplerColumn, SeedDatasetColumn)

LLM = (LLMTextColumn, LLMStructuredColumn, LLMJudgeColumn)


class Plan:
    """A spec made ready to run: its levels, its seed rows, its model windows."""

    def __init__(self, spec: JobSpec, seed_rows: list[dict[str, Any]] | None = None) -> None:
        self.spec = spec
        self.columns = {c.name: c for c in spec.columns}
        strategy = spec.seed_config.selection_strategy if spec.seed_config else None
        self.seed_rows, self.seed_offset = select(seed_rows or [], strategy)  # offset: of the first selected row
        declared_seed = [c.name for c in spec.columns if isinstance(c, SeedDatasetColumn)]
        seed_names = list(self.seed_rows[0]) if self.seed_rows else []
        for name in seed_names:
            if name.startswith("_") or (name in self.columns and name not in declared_seed):
                raise_bad(f"the seed's column {name!r} " + ("starts with '_', kept for provenance columns"
                          if name.startswith("_") else "has the name of a column of the spec"), name)
        for name in declared_seed:
            if self.seed_rows and name not in seed_names:
                raise_bad(f"seed-dataset column {name!r} is not a column of the seed (it has {seed_names})", name)
        self.seed_columns = declared_seed or [n for n in seed_names if n not in self.columns]
        depends = {c.name: column_references(c) for c in spec.columns if not isinstance(c, SeedDatasetColumn)}
        self.levels = [[self.columns[n] for n in level] for level in dag.levels(depends, known=self.seed_columns)]
        self.models = {m.alias: m for m in spec.model_configs}
        self.windows = {m.alias: Window(m.inference_parameters.max_parallel_requests) for m in spec.model_configs}
        self.llm_columns = [c for c in spec.columns if isinstance(c, LLM)]
        self.groups = -(-spec.num_records // spec.buffer_size)
        self._orders: dict[int, list[int]] = {}
        self.dropped_seed = {c.name for c in spec.columns if isinstance(c, SeedDatasetColumn) and c.drop}

    def slots(self, group: int) -> range:
        size = self.spec.buffer_size
        return range(group * size, min(self.spec.num_records, (group + 1) * size))

    def seed_row(self, row: int) -> int | None:
        """The index (among the selected seed rows) that row `row` reads."""
        if not self.seed_rows:
            return None
        n = len(self.seed_rows)
        if self.spec.seed_config is not None and self.spec.seed_config.sampling_strategy == "shuffle":
            epoch, at = divmod(row, n)
            return self._order(epoch)[at]
        return row % n

    def _order(self, epoch: int) -> list[int]:
        """The shuffled order of the seed rows in one pass over them (the last two kept: rows arrive in order)."""
        if epoch not in self._orders:
            order = list(range(len(self.seed_rows)))
            cell_rng(self.spec.seed, "\x00seed", epoch, 0).shuffle(order)
            self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
            self._orders[epoch] = order
        return self._orders[epoch]


def select(rows: list[dict[str, Any]], strategy: Any) -> tuple[list[dict[str, Any]], int]:
    """Data Designer's seed selection: an index range (both ends inclusive) or one of n equal blocks; with the
    index of the first row chosen."""
    if strategy is None or not rows:
        return rows, 0
    if isinstance(strategy, IndexRange):
        start, chosen = strategy.start, rows[strategy.start:strategy.end + 1]
    else:
        size = -(-len(rows) // strategy.num_partitions)
        start = strategy.index * size
        chosen = rows[start:start + size]
    if not chosen:
        raise_bad(f"seed_config.selection_strategy selects no row of the seed's {len(rows)}", "seed_config")
    return chosen, start


def raise_bad(message: str, column: str) -> None:
    raise BadRequestError(message, metadata={"column": column})


def column_references(c: Any) -> set[str]:
    where = f"column {c.name!r}"
    if isinstance(c, SamplerColumn):
        return {c.params.category} if c.sampler_type == "subcategory" else set()
    if isinstance(c, ExpressionColumn):
        return dag.references(c.expr, where)
    refs = dag.references(c.prompt, where)
    if c.system_prompt:
        refs |= dag.references(c.system_prompt, where)
    return refs


def judge_schema(c: LLMJudgeColumn) -> dict[str, Any]:
    """What a judge answers: for each rubric, its reasoning and one of its option keys."""
    return {"type": "object", "additionalProperties": False, "required": [s.name for s in c.scores],
            "properties": {s.name: {"type": "object", "additionalProperties": False, "required": ["reasoning", "score"],
                                    "properties": {"reasoning": {"type": "string"},
                                                   "score": {"enum": list(s.options)}}}
                           for s in c.scores}}


def judge_prompt(c: LLMJudgeColumn, rendered: str) -> str:
    rubrics = "\n\n".join(f"## {s.name}\n{s.description}\n" + "\n".join(f"- {k}: {v}" for k, v in s.options.items())
                          for s in c.scores)
    return (f"{rendered}\n\nJudge the text above against each rubric below. For each rubric, give your reasoning "
            f"and one score from its options.\n\n{rubrics}")
