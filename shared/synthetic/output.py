"""What a job writes, under `synthetic/<job>/` in the data store:

- `data/part-GGGGG.parquet`: the accepted rows of row group G, in one Arrow schema fixed by the spec (so row
  groups never disagree on a column's type), provenance columns first (`_job_id`, `_config_hash`, `_row`,
  `_attempt`, `_seed_row`, and for each LLM column `_<column>_model`, `_provider`, `_request_id`);
- `failures/part-GGGGG.parquet`: every failed attempt of those rows, with its column and reason;
- `config.json` (the spec as run, with its fingerprint), `metadata.json` (status, progress, cost, the license
  gate's verdict, the review), `README.md` (the dataset card, Hugging Face's YAML front matter).

Loadable with `datasets.load_dataset("parquet", data_files=".../data/*.parquet")`.
"""

from __future__ import annotations

import io
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from shared.synthetic.samplers import PERSON_FIELDS
from shared.synthetic.spec import (ExpressionColumn, JobSpec, LLMJudgeColumn, LLMStructuredColumn, LLMTextColumn,
                                   SamplerColumn, SeedDatasetColumn)

INT64 = (-(1 << 63), (1 << 63) - 1)
JSON_TEXT = pa.string()  # where a JSON schema has no single Arrow type, the value is kept as JSON text

FAILURES = pa.schema([("_job_id", pa.string()), ("_row", pa.int64()), ("_attempt", pa.int64()),
                      ("column", pa.string()), ("reason", pa.string()), ("status", pa.int64()),
                      ("request_id", pa.string())])


def _scalar_type(values: list[Any]) -> pa.DataType:
    if values and all(isinstance(v, bool) for v in values):
        return pa.bool_()
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pa.int64()
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return pa.float64()
    return pa.string()


class Shape:
    """A JSON schema's Arrow type, and the conversion of a value valid under it to that type."""

    def __init__(self, schema: Any) -> None:
        self.kind, self.children, self.item = "json", {}, None
        if not isinstance(schema, dict) or any(k in schema for k in ("$ref", "anyOf", "oneOf", "allOf", "not")):
            self.type = JSON_TEXT
            return
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            self.type = _scalar_type(schema["enum"])
            self.kind = "enum" if self.type != pa.string() or all(isinstance(v, str) for v in schema["enum"]) else "json"
            if self.kind == "json":
                self.type = JSON_TEXT
            return
        kind = schema.get("type", "object" if "properties" in schema else None)
        if isinstance(kind, list):
            real = [k for k in kind if k != "null"]
            kind = real[0] if len(real) == 1 else None
        if kind == "object" and isinstance(schema.get("properties"), dict) and schema["properties"] \
                and schema.get("additionalProperties", False) is False:
            self.kind = "object"
            self.children = {k: Shape(v) for k, v in schema["properties"].items()}
            self.type = pa.struct([(k, s.type) for k, s in self.children.items()])
        elif kind == "array" and isinstance(schema.get("items"), dict):
            self.kind, self.item = "array", Shape(schema["items"])
            self.type = pa.list_(self.item.type)
        elif kind in ("string", "integer", "number", "boolean"):
            self.kind = kind
            self.type = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(),
                         "boolean": pa.bool_()}[kind]
        else:
            self.type = JSON_TEXT

    def convert(self, value: Any) -> Any:
        """The value in this shape's type; ValueError for one it cannot hold (an integer past 64 bits)."""
        if value is None:
            return None
        if self.kind == "object":
            if not isinstance(value, dict):
                raise ValueError("expected an object")
            return {k: s.convert(value.get(k)) for k, s in self.children.items()}
        if self.kind == "array":
            if not isinstance(value, list):
                raise ValueError("expected an array")
            return [self.item.convert(v) for v in value]  # type: ignore[union-attr]
        if self.kind == "integer" or (self.kind == "enum" and self.type == pa.int64()):
            if not isinstance(value, int) or isinstance(value, bool):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise ValueError(f"expected an integer, got {value!r}")
            if not INT64[0] <= value <= INT64[1]:
                raise ValueError("an integer past 64 bits")
            return value
        if self.kind == "number" or (self.kind == "enum" and self.type == pa.float64()):
            return float(value)
        if self.kind == "json":
            return orjson.dumps(value).decode()
        return value


def sampler_type(c: SamplerColumn) -> pa.DataType:
    if c.sampler_type == "datetime":
        return pa.string()  # ISO 8601, or convert_to's strftime format
    if c.convert_to:
        return {"int": pa.int64(), "float": pa.float64(), "str": pa.string()}[c.convert_to]
    kind = c.sampler_type
    if kind == "category":
        return _scalar_type(c.params.values)
    if kind == "subcategory":
        return _scalar_type([v for vs in c.params.values.values() for v in vs])
    if kind in ("uniform", "gaussian"):
        return pa.float64()
    if kind in ("bernoulli", "binomial", "poisson"):
        return pa.int64()
    if kind == "person_from_faker":
        return pa.struct([(f, pa.int64() if f == "age" else pa.string()) for f in PERSON_FIELDS])
    return pa.string()  # datetime, uuid


def judge_shape(c: LLMJudgeColumn) -> Shape:
    from shared.synthetic.plan import judge_schema

    return Shape(judge_schema(c))


class Layout:
    """The Arrow schema of a job's rows, and the conversion of a made row to it."""

    def __init__(self, spec: JobSpec, seed_schema: pa.Schema | None, seed_columns: list[str]) -> None:
        fields: list[tuple[str, pa.DataType]] = [("_job_id", pa.string()), ("_config_hash", pa.string()),
                                                 ("_row", pa.int64()), ("_attempt", pa.int64()),
                                                 ("_seed_row", pa.int64())]
        self.shapes: dict[str, Shape] = {}
        for c in spec.columns:
            if isinstance(c, (LLMTextColumn, LLMStructuredColumn, LLMJudgeColumn)):
                fields += [(f"_{c.name}_model", pa.string()), (f"_{c.name}_provider", pa.string()),
                           (f"_{c.name}_request_id", pa.string())]
        dropped = {c.name for c in spec.columns if isinstance(c, SeedDatasetColumn) and c.drop}
        for name in seed_columns:
            if name not in dropped:
                fields.append((name, seed_schema.field(name).type if seed_schema is not None else pa.string()))
        for c in spec.columns:
            if c.drop or isinstance(c, SeedDatasetColumn):
                continue
            if isinstance(c, SamplerColumn):
                fields.append((c.name, sampler_type(c)))
            elif isinstance(c, ExpressionColumn):
                fields.append((c.name, {"str": pa.string(), "int": pa.int64(), "float": pa.float64(),
                                        "bool": pa.bool_()}[c.dtype]))
            elif isinstance(c, LLMTextColumn):
                fields.append((c.name, pa.string()))
            else:
                shape = Shape(c.output_format) if isinstance(c, LLMStructuredColumn) else judge_shape(c)
                self.shapes[c.name] = shape
                fields.append((c.name, shape.type))
        self.schema = pa.schema(fields)
        self.types = {name: kind for name, kind in fields}

    def convert(self, name: str, value: Any) -> Any:
        """The value in its column's Arrow type; ValueError when it cannot be (an integer past 64 bits, a value
        of another kind): the row fails, the group is never half-written."""
        shape = self.shapes.get(name)
        if shape is not None:
            return shape.convert(value)
        return scalar(self.types.get(name), value)

    def table(self, rows: list[dict[str, Any]]) -> pa.Table:
        return pa.Table.from_pylist(rows, schema=self.schema)


def scalar(kind: pa.DataType | None, value: Any) -> Any:
    if value is None or kind is None:
        return value
    if kind == pa.string():
        return value if isinstance(value, str) else str(value)
    if kind == pa.int64():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ValueError(f"expected an integer, got {value!r:.40}")
        value = int(value)
        if not INT64[0] <= value <= INT64[1]:
            raise ValueError("an integer past 64 bits")
        return value
    if kind == pa.float64():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r:.40}")
        return float(value)
    if kind == pa.bool_():
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r:.40}")
        return value
    return value  # structs (person) and seed types: as drawn or read


def parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def failures_table(failures: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(failures, schema=FAILURES)
