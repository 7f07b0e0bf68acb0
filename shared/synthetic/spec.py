"""The job spec: NeMo Data Designer's config vocabulary (model aliases, columns by `column_type`, samplers by
`sampler_type`, a seed dataset), plus what a job of ours needs and Data Designer has not: the number of rows,
the seed of the samplers, row groups, the failure budget, judge thresholds, and licenses.

A file Data Designer 0.9.7 writes with `write_config` (its `data_designer:` wrapper included) loads as is
(tests/fixtures/synthetic/). Fields Data Designer knows but this engine does not implement are accepted at
their defaults and refused otherwise, naming the field: nothing is accepted and then ignored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.errors import BadRequestError

# Names a template can read; a leading underscore is kept for the provenance columns (_job_id, _row, ...)
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
MAX_RECORDS = 1_000_000
MAX_BUFFER = 10_000  # rows a row group: a group's rows are in memory until it is written
MAX_COLUMNS = 256
MAX_PARALLEL = 128  # calls in flight for one job, all its aliases together (the gateway serves everyone else too)


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Unsupported(Spec):
    """Data Designer fields this engine does not implement: allowed only at Data Designer's defaults."""

    @model_validator(mode="after")
    def _defaults_only(self) -> "_Unsupported":
        for name in getattr(self, "UNSUPPORTED", ()):
            value = getattr(self, name)
            if value not in (None, [], {}, False, "none"):
                raise ValueError(f"{name!r} is a Data Designer feature this engine does not implement")
        return self


# -- models -----------------------------------------------------------------------------------------------
class Distribution(Spec):
    """Data Designer's sampled inference parameter: `uniform` {low, high} or `manual` {values, weights}."""

    distribution_type: Literal["uniform", "manual"]
    params: dict[str, Any]

    @model_validator(mode="after")
    def _params(self) -> "Distribution":
        p = self.params

        def numbers(value: Any, most: int) -> bool:
            return isinstance(value, list) and 0 < len(value) <= most and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)

        if self.distribution_type == "uniform":
            if set(p) != {"low", "high"} or not numbers([p["low"], p["high"]], 2) or p["low"] > p["high"]:
                raise ValueError("a uniform distribution has params {low, high}, numbers, low <= high")
        elif not set(p) <= {"values", "weights"} or not numbers(p.get("values"), 1000) or \
                ("weights" in p and p["weights"] is not None and (not numbers(p["weights"], 1000)
                                                                  or len(p["weights"]) != len(p["values"]))):
            raise ValueError("a manual distribution has params {values, weights}: up to 1,000 numbers each")
        return self

    def draw(self, rng: Any) -> float:
        p = self.params
        if self.distribution_type == "uniform":
            return rng.uniform(p["low"], p["high"])
        return rng.choices(p["values"], weights=p.get("weights"))[0]


class InferenceParameters(_Unsupported):
    UNSUPPORTED: ClassVar[tuple[str, ...]] = ("extra_body",)
    generation_type: Literal["chat-completion"] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | Distribution | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | Distribution | None = None
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    max_parallel_requests: Annotated[int, Field(ge=1, le=MAX_PARALLEL)] = 4
    timeout: Annotated[float, Field(gt=0, le=900)] | None = None
    extra_body: dict[str, Any] | None = None


class ModelAlias(_Unsupported):
    """An alias for a gateway model id (Data Designer's `model_configs` entry). `provider` names a Data Designer
    provider; here every call goes through the gateway, so it is kept only as written."""

    UNSUPPORTED: ClassVar[tuple[str, ...]] = ()
    alias: Name
    model: Annotated[str, Field(min_length=1, max_length=256)]
    inference_parameters: InferenceParameters = InferenceParameters()
    provider: str | None = None
    skip_health_check: bool = False


# -- samplers ---------------------------------------------------------------------------------------------
Scalar = Union[str, int, float]


class CategoryParams(Spec):
    sampler_type: Literal["category"] | None = None
    values: Annotated[list[Scalar], Field(min_length=1, max_length=100_000)]
    weights: list[Annotated[float, Field(ge=0)]] | None = None

    @model_validator(mode="after")
    def _weights(self) -> "CategoryParams":
        if self.weights is not None and (len(self.weights) != len(self.values) or sum(self.weights) <= 0):
            raise ValueError("weights must give one non-negative weight a value, not all zero")
        return self


class SubcategoryParams(Spec):
    sampler_type: Literal["subcategory"] | None = None
    category: Name
    values: dict[str, Annotated[list[Scalar], Field(min_length=1)]]


class UniformParams(Spec):
    sampler_type: Literal["uniform"] | None = None
    low: float
    high: float
    decimal_places: Annotated[int, Field(ge=0, le=15)] | None = None

    @model_validator(mode="after")
    def _order(self) -> "UniformParams":
        if self.low > self.high:
            raise ValueError("low must not be above high")
        return self


class GaussianParams(Spec):
    sampler_type: Literal["gaussian"] | None = None
    mean: float
    stddev: Annotated[float, Field(ge=0)]
    decimal_places: Annotated[int, Field(ge=0, le=15)] | None = None


class BernoulliParams(Spec):
    sampler_type: Literal["bernoulli"] | None = None
    p: Annotated[float, Field(ge=0, le=1)]


class BinomialParams(Spec):
    sampler_type: Literal["binomial"] | None = None
    n: Annotated[int, Field(ge=0, le=10_000)]
    p: Annotated[float, Field(ge=0, le=1)]


class PoissonParams(Spec):
    sampler_type: Literal["poisson"] | None = None
    mean: Annotated[float, Field(ge=0, le=1e6)]


class DatetimeParams(Spec):
    sampler_type: Literal["datetime"] | None = None
    start: str
    end: str
    unit: Literal["Y", "M", "D", "h", "m", "s"] = "D"

    @model_validator(mode="after")
    def _order(self) -> "DatetimeParams":
        from shared.synthetic.samplers import _parse_time

        try:
            start, end = _parse_time(self.start), _parse_time(self.end)
        except ValueError as e:
            raise ValueError(f"start and end are ISO 8601 dates or times ({e})") from None
        if start > end:
            raise ValueError("start must not be after end")
        return self


class UUIDParams(Spec):
    sampler_type: Literal["uuid"] | None = None
    prefix: str | None = None
    short_form: bool = False
    uppercase: bool = False


class PersonFromFakerParams(Spec):
    sampler_type: Literal["person_from_faker"] | None = None
    locale: str = "en_US"
    sex: Literal["Male", "Female"] | None = None
    city: str | list[str] | None = None
    age_range: Annotated[list[Annotated[int, Field(ge=0, le=114)]], Field(min_length=2, max_length=2)] = [18, 114]

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        from faker.config import AVAILABLE_LOCALES

        if value not in AVAILABLE_LOCALES:
            raise ValueError(f"Faker has no locale {value!r}")
        return value

    @model_validator(mode="after")
    def _ages(self) -> "PersonFromFakerParams":
        if self.age_range[0] > self.age_range[1]:
            raise ValueError("age_range is [low, high]")
        return self


PARAMS: dict[str, type[Spec]] = {
    "category": CategoryParams, "subcategory": SubcategoryParams, "uniform": UniformParams,
    "gaussian": GaussianParams, "bernoulli": BernoulliParams, "binomial": BinomialParams,
    "poisson": PoissonParams, "datetime": DatetimeParams, "uuid": UUIDParams,
    "person_from_faker": PersonFromFakerParams,
}


# -- columns ----------------------------------------------------------------------------------------------
class _Column(_Unsupported):
    name: Name
    drop: bool = False
    skip: Any = None  # Data Designer's conditional skip: not implemented (refused unless null)
    propagate_skip: bool = True

    @model_validator(mode="after")
    def _no_skip(self) -> "_Column":
        if self.skip is not None:
            raise ValueError("'skip' is a Data Designer feature this engine does not implement")
        return self


class SamplerColumn(_Column):
    UNSUPPORTED: ClassVar[tuple[str, ...]] = ("conditional_params",)
    column_type: Literal["sampler"]
    sampler_type: str
    params: Any
    conditional_params: dict[str, Any] | None = None
    convert_to: Annotated[str, Field(min_length=1, max_length=64)] | None = None  # int|float|str; datetime: strftime

    @model_validator(mode="after")
    def _conversion(self) -> "SamplerColumn":
        if self.convert_to is None:
            return self
        if self.sampler_type == "datetime":
            if "%" not in self.convert_to:
                raise ValueError("a datetime's convert_to is a strftime format, e.g. '%Y-%m-%d'")
            return self
        if self.convert_to not in ("int", "float", "str"):
            raise ValueError("convert_to is int, float or str")
        if self.convert_to != "str":
            if self.sampler_type in ("uuid", "person_from_faker"):
                raise ValueError(f"a {self.sampler_type} cannot be converted to {self.convert_to}")
            values = (self.params.values if self.sampler_type == "category" else
                      [v for vs in self.params.values.values() for v in vs] if self.sampler_type == "subcategory"
                      else None)
            if values is not None and not all(isinstance(v, (int, float)) for v in values):
                raise ValueError(f"convert_to {self.convert_to} needs values that are all numbers")
        return self

    @model_validator(mode="before")
    @classmethod
    def _typed_params(cls, data: Any) -> Any:
        if isinstance(data, dict):
            kind = data.get("sampler_type")
            if kind not in PARAMS:
                raise ValueError(f"sampler_type {kind!r} is not one of {sorted(PARAMS)}")
            data = {**data, "params": PARAMS[kind].model_validate(data.get("params") or {})}
        return data


class _LLMColumn(_Column):
    UNSUPPORTED: ClassVar[tuple[str, ...]] = ("multi_modal_context", "tool_alias")
    prompt: Annotated[str, Field(min_length=1, max_length=100_000)]
    model_alias: Name
    system_prompt: Annotated[str, Field(max_length=100_000)] | None = None
    multi_modal_context: list[Any] | None = None
    tool_alias: str | None = None
    with_trace: Literal["none"] = "none"  # Data Designer's traces: not implemented
    extract_reasoning_content: Literal[False] = False


class LLMTextColumn(_LLMColumn):
    column_type: Literal["llm-text"]


class LLMStructuredColumn(_LLMColumn):
    column_type: Literal["llm-structured"]
    output_format: dict[str, Any]

    @field_validator("output_format")
    @classmethod
    def _schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        from shared.chat.json_schema import SchemaBudget, check_schema

        problem = check_schema(value, SchemaBudget())
        if problem:
            raise ValueError(f"output_format is not a usable JSON schema: {problem}")
        return value


class Score(Spec):
    """A rubric. Option keys that are all whole numbers ("1", "2" in JSON or in a file Data Designer wrote) are
    taken as integers, so that scores are numbers in the data (Data Designer keeps them as strings)."""

    name: Name
    description: Annotated[str, Field(max_length=10_000)] = ""
    options: Annotated[dict[Union[int, str], str], Field(min_length=1, max_length=100)]

    @field_validator("options")
    @classmethod
    def _numbers(cls, value: dict[Any, str]) -> dict[Any, str]:
        if all(isinstance(k, int) or (isinstance(k, str) and k.strip().lstrip("-").isascii() and k.strip().lstrip("-").isdigit()) for k in value):
            return {int(k): v for k, v in value.items()}
        return value


class LLMJudgeColumn(_LLMColumn):
    """Data Designer's judge; `threshold` (ours) makes it a gate: a row whose score for a named rubric is below
    the given value is rejected and replaced (scores are compared as numbers)."""

    column_type: Literal["llm-judge"]
    scores: Annotated[list[Score], Field(min_length=1, max_length=32)]
    threshold: dict[str, float] = {}

    @model_validator(mode="after")
    def _threshold(self) -> "LLMJudgeColumn":
        names = {s.name for s in self.scores}
        for name in self.threshold:
            if name not in names:
                raise ValueError(f"threshold names {name!r}, which is not one of this judge's scores")
        for score in self.scores:
            if score.name in self.threshold and not all(_numeric(k) for k in score.options):
                raise ValueError(f"score {score.name!r} has a threshold, so its options must be numbers")
        return self


def _numeric(value: Any) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


class ExpressionColumn(_Column):
    column_type: Literal["expression"]
    expr: Annotated[str, Field(min_length=1, max_length=100_000)]
    dtype: Literal["str", "int", "float", "bool"] = "str"


class SeedDatasetColumn(_Column):
    """A column of the seed dataset, passed through (Data Designer writes one for each seed column it uses)."""

    column_type: Literal["seed-dataset"]


Column = Annotated[Union[SamplerColumn, LLMTextColumn, LLMStructuredColumn, LLMJudgeColumn, ExpressionColumn,
                         SeedDatasetColumn], Field(discriminator="column_type")]
LLM_TYPES = (LLMTextColumn, LLMStructuredColumn, LLMJudgeColumn)


# -- seed -------------------------------------------------------------------------------------------------
class SeedSource(Spec):
    seed_type: Literal["local"] | None = "local"
    path: Annotated[str, Field(min_length=1, max_length=2048)]


class IndexRange(Spec):
    start: Annotated[int, Field(ge=0)]
    end: Annotated[int, Field(ge=0)]  # inclusive, as Data Designer's


class PartitionBlock(Spec):
    index: Annotated[int, Field(ge=0)]
    num_partitions: Annotated[int, Field(ge=1)]


class SeedConfig(Spec):
    """Where the seed rows come from, which of them and in what order, and (ours) their license: an SPDX id,
    required unless the seed's dataset card (a README.md beside it with `license:` front matter) declares one."""

    source: SeedSource
    sampling_strategy: Literal["ordered", "shuffle"] = "ordered"
    selection_strategy: IndexRange | PartitionBlock | None = None
    license: Annotated[str, Field(max_length=64)] | None = None
    name: str | None = None


# -- the job ----------------------------------------------------------------------------------------------
class LicensePolicy(Spec):
    """What the data is for (the gate checks each model's terms against it) and which seed licenses pass."""

    commercial: bool = True
    train_models: bool = True
    allowed_seed_licenses: list[str] | None = None  # default: shared/synthetic/licensing.py


class Budget(Spec):
    """How hard the engine tries: each row may be attempted `max_attempts_per_row` times (default 10; a failed generation
    or a judge below its threshold is one attempt), and the job gives up once `max_failed_rows` attempts have
    failed in all (default: as many as the rows asked for, plus 10: at most about twice the calls). A job that gives up says so; it never returns fewer
    rows as if complete."""

    max_attempts_per_row: Annotated[int, Field(ge=1, le=100)] = 10
    max_failed_rows: Annotated[int, Field(ge=0)] | None = None
    max_cost_usd: Annotated[float, Field(gt=0)] | None = None


class JobSpec(Spec):
    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")] = "synthetic"
    num_records: Annotated[int, Field(ge=1, le=MAX_RECORDS)] = 10
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    buffer_size: Annotated[int, Field(ge=1, le=MAX_BUFFER)] = 100  # rows a row group (Data Designer's name)
    model_configs: Annotated[list[ModelAlias], Field(max_length=32)] = []
    columns: Annotated[list[Column], Field(min_length=1, max_length=MAX_COLUMNS)]
    seed_config: SeedConfig | None = None
    license_policy: LicensePolicy = LicensePolicy()
    budget: Budget = Budget()
    description: Annotated[str, Field(max_length=10_000)] = ""
    # Data Designer's other top-level sections: accepted only empty
    constraints: list[Any] | None = None
    processors: list[Any] | None = None
    profilers: list[Any] | None = None
    tool_configs: list[Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "JobSpec":
        for name in ("constraints", "processors", "profilers", "tool_configs"):
            if getattr(self, name):
                raise ValueError(f"{name!r} is a Data Designer feature this engine does not implement")
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"column {dupes[0]!r} is declared twice")
        aliases = [m.alias for m in self.model_configs]
        if len(set(aliases)) != len(aliases):
            raise ValueError("a model alias is declared twice")
        in_flight = sum(m.inference_parameters.max_parallel_requests for m in self.model_configs)
        if in_flight > MAX_PARALLEL:
            raise ValueError(f"max_parallel_requests add up to {in_flight} over the model aliases; a job may have "
                             f"at most {MAX_PARALLEL} calls in flight")
        for c in self.columns:
            if isinstance(c, LLM_TYPES) and c.model_alias not in aliases:
                raise ValueError(f"column {c.name!r} uses model alias {c.model_alias!r}, which model_configs "
                                 "does not declare")
            if isinstance(c, SeedDatasetColumn) and self.seed_config is None:
                raise ValueError(f"column {c.name!r} is a seed-dataset column, but there is no seed_config")
        return self

    @property
    def max_failed_rows(self) -> int:
        if self.budget.max_failed_rows is not None:
            return self.budget.max_failed_rows
        return self.num_records + 10

    def fingerprint(self) -> str:
        """What identifies the rows: everything that shapes them (not the name, the description or the budget:
        a job stopped by its budget resumes with a bigger one). A resumed job continues only a checkpoint of
        the same fingerprint."""
        shaped = self.model_dump(mode="json", exclude={"name", "description", "budget"})
        return hashlib.sha256(json.dumps(shaped, sort_keys=True).encode()).hexdigest()[:16]


def unwrap(data: Any) -> Any:
    """Data Designer's `write_config` wraps the config in `data_designer:` (a BuilderConfig), beside
    `datastore_settings` and `library_version`; our own fields may sit beside it."""
    if isinstance(data, dict) and isinstance(data.get("data_designer"), dict):
        outer = {k: v for k, v in data.items() if k not in ("data_designer", "datastore_settings", "library_version")}
        return {**data["data_designer"], **outer}
    return data


def parse(data: Any) -> JobSpec:
    """A JobSpec from parsed YAML/JSON; BadRequestError naming the first problem's field."""
    try:
        return JobSpec.model_validate(unwrap(data))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if not str(p).startswith(("function-", "tagged-union")))
        message = first["msg"].removeprefix("Value error, ")
        raise BadRequestError(f"job spec: {where}: {message}" if where else f"job spec: {message}",
                              metadata={"field": where, "problems": len(e.errors())}) from None


class _NoAliases(yaml.SafeLoader):
    """YAML without anchors and aliases: a spec has no use for them, and they make a small document expand
    without bound (a "billion laughs")."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "a job spec may not use YAML aliases", event.start_mark)
        return super().compose_node(parent, index)


def yaml_data(text: str | bytes) -> Any:
    """YAML as data, refusing aliases (yaml.YAMLError otherwise)."""
    return yaml.load(text, Loader=_NoAliases)  # noqa: S506 (a SafeLoader)


def load(path: str | Path) -> JobSpec:
    """A spec from a YAML or JSON file."""
    text = Path(path).read_text()
    try:
        data = json.loads(text) if str(path).endswith(".json") else yaml_data(text)
    except (ValueError, yaml.YAMLError) as e:
        raise BadRequestError(f"{path}: not valid {'JSON' if str(path).endswith('.json') else 'YAML'}: {e}") from None
    return parse(data)
