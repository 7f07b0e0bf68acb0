"""The engine: rows made column by column in the DAG's order, row groups checkpointed as they complete.

Row `i` of a job is made by attempts 0, 1, …: an attempt draws its samplers from (seed, column, i, attempt),
takes its seed row from i, renders its prompts, and asks the gateway for its LLM cells (the same request for
the same attempt, `seed` included, so a deterministic model gives the same answer again). An attempt that
fails (a call that failed for good, an answer that breaks its schema, a judge score below its threshold, an
expression that does not convert) is kept in `failures` with its reason, and the row is attempted again, up to
`budget.max_attempts_per_row` times; past that, or past `max_failed_rows` failures in the job, the job stops
and says why. So a job that completes has exactly `num_records` rows, and every failure is on record.

Row groups (`buffer_size` rows) are independent: each is written as `data/part-GGGGG.parquet` (with
`failures/part-GGGGG.parquet`) once all its rows are made, and a resumed job skips the groups whose parts
exist (checkpoints are only ever whole parts, written last, conditionally).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import orjson

from shared.synthetic import dag
from shared.synthetic.client import Answer, BudgetExhausted, CallFailed, GatewayClient
from shared.synthetic.plan import Plan, judge_prompt, judge_schema
from shared.synthetic.samplers import SAMPLERS, cell_rng
from shared.synthetic.spec import (Distribution, ExpressionColumn, LLMJudgeColumn, LLMStructuredColumn,
                                   SamplerColumn, SeedDatasetColumn)

class RowFailed(Exception):
    def __init__(self, column: str, reason: str, *, status: int | None = None, request_id: str | None = None) -> None:
        super().__init__(f"{column}: {reason}")
        self.column, self.reason, self.status, self.request_id = column, reason, status, request_id


class JobStopped(Exception):
    """The job cannot complete: its failure budget is spent, a row ran out of attempts, or its key of money."""


@dataclass
class ModelUsage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def add(self, answer: Answer) -> None:
        self.calls += 1
        self.prompt_tokens += answer.prompt_tokens
        self.completion_tokens += answer.completion_tokens
        self.cost += answer.cost


@dataclass
class Progress:
    """What the job has done so far (this process's share): rows accepted and failed, calls and money."""

    rows_done: int = 0
    rows_failed: int = 0
    groups_done: int = 0
    usage: dict[str, ModelUsage] = field(default_factory=lambda: defaultdict(ModelUsage))

    @property
    def cost(self) -> float:
        return sum(u.cost for u in self.usage.values())


@dataclass
class Group:
    index: int
    rows: list[dict[str, Any]]
    failures: list[dict[str, Any]]


class Engine:
    """Makes rows for one job through `client` (the gateway). `on_group(group)` is awaited for each finished
    group, in completion order (the runner writes it); `skip` are groups already written."""

    def __init__(self, plan: Plan, client: GatewayClient, *, job_id: str, fingerprint: str,
                 layout: Any = None) -> None:
        self.plan, self.client, self.job_id, self.fingerprint = plan, client, job_id, fingerprint
        self.layout = layout  # shared/synthetic/output.py Layout: converts each row to the job's Arrow types
        self.failed_before = 0  # failed attempts of the groups a resumed job already wrote
        self.open_failures: dict[int, list[dict[str, Any]]] = {}  # failed attempts of the groups being made
        self.group_usage: dict[int, dict[str, ModelUsage]] = {}  # calls by group (and model), until written
        self.spec = plan.spec
        self.progress = Progress()
        self.stopped: str | None = None

    # -- one row ------------------------------------------------------------------------------------------
    async def make_row(self, row: int, attempt: int) -> dict[str, Any]:
        spec = self.spec
        values: dict[str, Any] = {}
        out: dict[str, Any] = {"_job_id": self.job_id, "_config_hash": self.fingerprint, "_row": row,
                               "_attempt": attempt}
        seed_at = self.plan.seed_row(row)
        out["_seed_row"] = None if seed_at is None else self.plan.seed_offset + seed_at  # its index in the seed
        if seed_at is not None:
            source = self.plan.seed_rows[seed_at]
            for name in self.plan.seed_columns:
                values[name] = source[name]
        for level in self.plan.levels:
            pending = []
            for c in level:
                if isinstance(c, SamplerColumn):
                    values[c.name] = self._sample(c, row, attempt, values)
                elif isinstance(c, ExpressionColumn):
                    values[c.name] = self._expression(c, values)
                else:
                    pending.append(c)
            if pending:
                results = await asyncio.gather(*(self._llm(c, row, attempt, values) for c in pending),
                                               return_exceptions=True)
                failed = None
                for c, result in zip(pending, results):
                    if isinstance(result, BaseException):
                        if not isinstance(result, RowFailed):
                            raise result
                        failed = failed or result
                        continue
                    value, answer = result
                    values[c.name] = value
                    out[f"_{c.name}_model"] = answer.model
                    out[f"_{c.name}_provider"] = answer.provider
                    out[f"_{c.name}_request_id"] = answer.request_id
                if failed is not None:
                    raise failed
        for c in spec.columns:
            if isinstance(c, LLMJudgeColumn) and c.threshold:
                for name, least in c.threshold.items():
                    score = float(values[c.name][name]["score"])
                    if score < least:
                        raise RowFailed(c.name, f"judge score {name} = {score:g}, below the threshold {least:g}",
                                        request_id=out.get(f"_{c.name}_request_id"))
        for name in self.plan.seed_columns:
            if name not in self.plan.dropped_seed:
                out[name] = values[name]
        for c in spec.columns:
            if not c.drop and c.name in values and not isinstance(c, SeedDatasetColumn):
                try:
                    out[c.name] = self.layout.convert(c.name, values[c.name]) if self.layout else values[c.name]
                except (ValueError, OverflowError, TypeError) as e:
                    raise RowFailed(c.name, f"the value does not fit the column's type: {e}") from None
        return out

    def _sample(self, c: SamplerColumn, row: int, attempt: int, values: dict[str, Any]) -> Any:
        rng = cell_rng(self.spec.seed, c.name, row, attempt)
        try:
            value = SAMPLERS[c.sampler_type](c.params, rng, values)
        except KeyError as e:  # a subcategory whose parent took a value it has no list for
            raise RowFailed(c.name, f"subcategory has no values for {c.params.category} = {e.args[0]!r}") from None
        if isinstance(value, datetime):
            return value.strftime(c.convert_to or "%Y-%m-%dT%H:%M:%S")
        places = getattr(c.params, "decimal_places", None)
        if places is not None and isinstance(value, float):
            value = round(value, places)
        if c.convert_to == "int":
            value = int(round(value))
        elif c.convert_to == "float":
            value = float(value)
        elif c.convert_to == "str":
            value = str(value)
        return value

    def _expression(self, c: ExpressionColumn, values: dict[str, Any]) -> Any:
        text = self._render(c.name, c.expr, values).strip()
        try:
            if c.dtype == "int":
                try:
                    return int(text)  # exact, however long (the column's type range-checks it)
                except ValueError:
                    return int(float(text))
            if c.dtype == "float":
                return float(text)
            if c.dtype == "bool":
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                return text.lower() in ("true", "1", "yes")
        except (ValueError, OverflowError):
            raise RowFailed(c.name, f"expression gave {text[:80]!r}, not a {c.dtype}") from None
        return text

    def _render(self, column: str, text: str, values: dict[str, Any]) -> str:
        import jinja2

        try:
            return dag.render(text, values)
        except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, RecursionError) as e:
            raise RowFailed(column, f"template: {type(e).__name__}: {str(e)[:200]}") from None

    async def _llm(self, c: Any, row: int, attempt: int, values: dict[str, Any]) -> tuple[Any, Answer]:
        alias = self.plan.models[c.model_alias]
        params = alias.inference_parameters
        prompt = self._render(c.name, c.prompt, values)
        messages = []
        if c.system_prompt:
            messages.append({"role": "system", "content": self._render(c.name, c.system_prompt, values)})
        body: dict[str, Any] = {"model": alias.model, "messages": messages,
                                "seed": cell_rng(self.spec.seed, c.name, row, attempt).getrandbits(31)}
        for name in ("temperature", "top_p", "max_tokens"):
            value = getattr(params, name)
            if isinstance(value, Distribution):
                value = value.draw(cell_rng(self.spec.seed, f"{c.name}|{name}", row, attempt))
            if value is not None:
                body[name] = value
        schema = None
        if isinstance(c, LLMStructuredColumn):
            schema = c.output_format
        elif isinstance(c, LLMJudgeColumn):
            schema = judge_schema(c)
            prompt = judge_prompt(c, prompt)
        messages.append({"role": "user", "content": prompt})
        if schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": c.name, "schema": schema, "strict": True}}
        try:
            answer = await self.client.complete(body, self.plan.windows[c.model_alias], timeout=params.timeout)
        except BudgetExhausted:
            raise
        except CallFailed as e:
            raise RowFailed(c.name, e.reason, status=e.status, request_id=e.request_id) from None
        self.progress.usage[alias.model].add(answer)
        group = self.group_usage.setdefault(row // self.spec.buffer_size, {})
        group.setdefault(alias.model, ModelUsage()).add(answer)
        if answer.model.split(":")[0] != alias.model.split(":")[0]:
            # a routing policy or a fallback sent the call elsewhere: the license gate checked only alias.model
            raise RowFailed(c.name, f"answered by {answer.model}, not {alias.model}, the model the license gate "
                                    "checked (a routing policy or a fallback sent the call on)",
                            request_id=answer.request_id)
        if schema is None:
            if not answer.content.strip():
                raise RowFailed(c.name, "the model answered nothing", request_id=answer.request_id)
            return answer.content, answer
        try:
            value = orjson.loads(answer.content)
        except orjson.JSONDecodeError:
            raise RowFailed(c.name, f"the answer is not JSON (heal_status {answer.heal_status})",
                            request_id=answer.request_id) from None
        from shared.chat.json_schema import violations

        problems = violations(schema, value)
        if problems:
            where = "/".join(str(p) for p in problems[0].absolute_path) or "(root)"
            raise RowFailed(c.name, f"the answer breaks the schema at {where}: {problems[0].message[:160]}",
                            request_id=answer.request_id)
        return value, answer

    # -- groups -------------------------------------------------------------------------------------------
    async def make_group(self, index: int) -> Group:
        rows: list[dict[str, Any] | None] = [None] * len(self.plan.slots(index))
        failures: list[dict[str, Any]] = []
        self.open_failures[index] = failures  # kept even if the job stops before the group is done
        first = self.plan.slots(index).start

        async def one(row: int) -> None:
            for attempt in range(self.spec.budget.max_attempts_per_row):
                if self.stopped:
                    raise JobStopped(self.stopped)
                try:
                    rows[row - first] = await self.make_row(row, attempt)
                    self.progress.rows_done += 1
                    return
                except RowFailed as e:
                    failures.append({"_job_id": self.job_id, "_row": row, "_attempt": attempt, "column": e.column,
                                     "reason": e.reason, "status": e.status, "request_id": e.request_id})
                    self.progress.rows_failed += 1
                    failed = self.failed_before + self.progress.rows_failed
                    if failed > self.spec.max_failed_rows:
                        self.stop(f"the failure budget is spent: {failed} failed attempts, "
                                  f"more than max_failed_rows = {self.spec.max_failed_rows} (last: {e})")
                except BudgetExhausted as e:
                    self.stop(f"the job's key cannot pay for more calls: {e.reason}")
            self.stop(f"row {row} failed all {self.spec.budget.max_attempts_per_row} attempts "
                      f"(max_attempts_per_row); the last: {failures[-1]['column']}: {failures[-1]['reason']}")

        # rows in flight: enough to keep every window full twice over, not the whole group at once
        rows_at_once = asyncio.Semaphore(max(16, 2 * sum(w.ceiling for w in self.plan.windows.values())))

        async def bounded(row: int) -> None:
            async with rows_at_once:
                await one(row)

        results = await asyncio.gather(*(bounded(r) for r in self.plan.slots(index)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, JobStopped):
                raise result
        if self.stopped:
            raise JobStopped(self.stopped)
        del self.open_failures[index]
        return Group(index, rows, failures)  # type: ignore[arg-type]

    def cancel(self, reason: str) -> None:
        """Stop the job from any thread: no attempt starts after this (those in flight end as they do)."""
        if self.stopped is None:
            self.stopped = reason

    def stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason
        raise JobStopped(self.stopped)

    async def run(self, groups: list[int], on_group: Callable[[Group], Awaitable[None]],
                  in_flight: int | None = None) -> None:
        """Make the given groups, a few at a time (enough to keep every model window full), handing each to
        `on_group` as it completes. Raises JobStopped when the job cannot complete."""
        widest = max((w.ceiling for w in self.plan.windows.values()), default=1)
        limit = in_flight or max(2, -(-2 * widest // self.spec.buffer_size) + 1)
        todo = list(groups)
        running: set[asyncio.Task[Group]] = set()
        try:
            while todo or running:
                while todo and len(running) < limit and not self.stopped:
                    running.add(asyncio.create_task(self.make_group(todo.pop(0))))
                if not running:
                    break
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda d: d.exception() is not None):  # the finished ones first
                    group = task.result()  # raises JobStopped
                    await on_group(group)
                    self.progress.groups_done += 1
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        if self.stopped:
            raise JobStopped(self.stopped)

    async def preview(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every row of the plan (make the plan of a few rows), and their failed attempts, in memory."""
        groups: list[Group] = []

        async def keep(group: Group) -> None:
            groups.append(group)

        await self.run(list(range(self.plan.groups)), keep)
        groups.sort(key=lambda g: g.index)
        return [r for g in groups for r in g.rows], [f for g in groups for f in g.failures]
