"""Seed data sets: read from the data store, an `s3://` URI or (the CLI only) a local file, with their license
from the job spec or from a dataset card beside them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from shared.errors import BadRequestError
from shared.lake.store import LakeStore, open_store
from shared.synthetic.spec import SeedConfig

MAX_SEED_BYTES = 256 * 1024 * 1024
MAX_SEED_ROWS = 1_000_000


@dataclass
class Seed:
    name: str
    license: str | None  # declared by the job, else by the seed's dataset card
    license_source: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    schema: pa.Schema | None = None
    digest: str = ""


class SeedReader:
    """Reads a seed: `s3://bucket/key`, a key of the job store, or (CLI only) a local file. Jobs sent through the
    API never read the server's files: a management key must not be a way to read /proc/self/environ."""

    def __init__(self, store: LakeStore | None, *, local_dir: Path | None = None, bucket: str | None = None) -> None:
        """`bucket`: the one bucket an s3:// seed may name through the API (the data bucket); the CLI (with a
        `local_dir`) reads any bucket its own credentials reach."""
        self.store, self.local_dir, self.bucket = store, local_dir, bucket

    def _get(self, path: str) -> bytes:
        if path.startswith("s3://"):
            bucket, _, key = path[5:].partition("/")
            if self.local_dir is None and bucket != self.bucket:
                raise BadRequestError(f"seed_config.source.path: through the API a seed is in the data bucket "
                                      f"(s3://{self.bucket}/...)", metadata={"field": "seed_config.source.path"})
            if not key:
                raise BadRequestError("seed_config.source.path: an s3:// URI names an object",
                                      metadata={"field": "seed_config.source.path"})
            try:
                return open_store(f"s3://{bucket}").get(key)
            except (FileNotFoundError, BadRequestError):
                raise
            except Exception as e:  # noqa: BLE001 (a bucket that is not there, a name S3 refuses, no access)
                raise BadRequestError(f"seed_config.source.path: {path[:200]!r} cannot be read "
                                      f"({type(e).__name__})", metadata={"field": "seed_config.source.path"}) from None
        if self.local_dir is not None:
            return (self.local_dir / path).read_bytes()
        if path.startswith("/") or ".." in Path(path).parts or self.store is None:
            raise BadRequestError("seed_config.source.path: through the API a seed is an s3:// URI or a key of the "
                                  "data store (e.g. seeds/clauses.csv), not a file of the server",
                                  metadata={"field": "seed_config.source.path"})
        return self.store.get(path)

    def card_license(self, path: str) -> str | None:
        """The `license:` of a dataset card (README.md) beside the seed, if there is one."""
        card = path.rsplit("/", 1)[0] + "/README.md" if "/" in path else "README.md"
        try:
            text = self._get(card).decode("utf-8", errors="replace")
        except (FileNotFoundError, OSError, BadRequestError):
            return None
        from shared.synthetic.licensing import card_license

        return card_license(text)

    def read(self, config: SeedConfig) -> Seed:
        path = config.source.path
        name = config.name or path.rsplit("/", 1)[-1]
        if config.license:
            seed = Seed(name, config.license, "the job spec")
        else:
            found = self.card_license(path)
            seed = Seed(name, found, "the seed's dataset card" if found else "nowhere")
        return seed

    def load(self, config: SeedConfig, seed: Seed) -> Seed:
        path = config.source.path
        try:
            data = self._get(path)
        except FileNotFoundError:
            raise BadRequestError(f"seed_config.source.path: {path!r} does not exist",
                                  metadata={"field": "seed_config.source.path"}) from None
        if len(data) > MAX_SEED_BYTES:
            raise BadRequestError(f"the seed is over {MAX_SEED_BYTES} bytes", metadata={"field": "seed_config"})
        table = _seed_table(path, data)
        if table.num_rows == 0 or table.num_rows > MAX_SEED_ROWS:
            raise BadRequestError(f"the seed has {table.num_rows} rows (1 to {MAX_SEED_ROWS})",
                                  metadata={"field": "seed_config"})
        seed.rows, seed.schema = table.to_pylist(), table.schema
        seed.digest = hashlib.sha256(data).hexdigest()[:16]
        return seed


def _seed_table(path: str, data: bytes) -> pa.Table:
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    lower = path.lower()
    try:
        if lower.endswith((".parquet", ".pq")):
            return pq.read_table(pa.BufferReader(data))
        if lower.endswith(".csv"):
            return pacsv.read_csv(pa.BufferReader(data))
        if lower.endswith((".jsonl", ".ndjson", ".json")):
            return pajson.read_json(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as e:
        raise BadRequestError(f"the seed {path!r} does not parse: {str(e)[:200]}",
                              metadata={"field": "seed_config.source.path"}) from None
    raise BadRequestError("a seed is .parquet, .csv or .jsonl", metadata={"field": "seed_config.source.path"})
