"""Where the lake's objects live: the data bucket on S3 (or the local stack's moto), or a directory.

Small on purpose: put, get, list with ETags and version ids, delete one version. The writers need ETags and
versions (compaction replaces exactly the parts it read); readers get a pyarrow filesystem for the query engine.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    version: str | None = None


class ConflictError(FileExistsError):
    """A conditional write found the object changed (another writer got there first)."""


ABSENT = "absent"  # `expect` for a write that must create the object


class LakeStore(Protocol):
    uri: str

    def put(self, key: str, data: bytes, *, expect: str | None = None) -> ObjectInfo:
        """Write; with `expect` (an ETag, or ABSENT) only if the object is still that (ConflictError if not)."""
        ...
    def get(self, key: str) -> bytes:
        """The object's bytes; FileNotFoundError when there is none (whatever the store)."""
        ...
    def list(self, prefix: str) -> list[ObjectInfo]: ...
    def delete(self, info: ObjectInfo) -> None: ...
    def arrow(self) -> tuple[Any, str]:
        """(a pyarrow filesystem, the lake's root path on it)"""
        ...


class S3Store:
    def __init__(self, bucket: str, prefix: str = "") -> None:
        self.bucket, self.prefix = bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}"
        self._client: Any = None

    @property
    def s3(self) -> Any:
        if self._client is None:
            from shared.aws import client

            self._client = client("s3")
        return self._client

    def put(self, key: str, data: bytes, *, expect: str | None = None) -> ObjectInfo:
        kwargs: dict[str, Any] = {}
        if expect == ABSENT:
            kwargs["IfNoneMatch"] = "*"
        elif expect is not None:
            kwargs["IfMatch"] = f'"{expect}"'
        try:
            r = self.s3.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data,
                                   ContentType="application/octet-stream", **kwargs)
        except Exception as e:
            code = getattr(e, "response", {}).get("Error", {}).get("Code", "")
            if expect is not None and code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412"):
                raise ConflictError(f"{key} changed since it was read") from e
            raise
        return ObjectInfo(key, r["ETag"].strip('"'), len(data), r.get("VersionId"))

    def get(self, key: str) -> bytes:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read()
        except Exception as e:
            if getattr(e, "response", {}).get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from e  # as LocalStore: one way to say "not there"
            raise

    def list(self, prefix: str) -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
        while True:
            page = self.s3.list_objects_v2(**kwargs)
            out.extend(ObjectInfo(o["Key"][len(self.prefix):], o["ETag"].strip('"'), o["Size"])
                       for o in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return out
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def delete(self, info: ObjectInfo) -> None:
        """Delete the version that was read: in a versioned bucket, a part rewritten since stays current."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.prefix + info.key}
        version = info.version or self._version_of(info)
        if version and version != "null":
            kwargs["VersionId"] = version
        self.s3.delete_object(**kwargs)

    def _version_of(self, info: ObjectInfo) -> str | None:
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=self.prefix + info.key)
        except Exception:  # gone already
            return None
        if head["ETag"].strip('"') != info.etag:
            raise FileExistsError(f"{info.key} changed since it was read")
        return head.get("VersionId")

    def arrow(self) -> tuple[Any, str]:
        from pyarrow import fs

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        kwargs: dict[str, Any] = {"region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                                  or "us-east-1"}
        if endpoint:
            parsed = urlparse(endpoint)
            kwargs.update(endpoint_override=parsed.netloc, scheme=parsed.scheme or "http")
        if os.environ.get("AWS_ACCESS_KEY_ID"):
            kwargs.update(access_key=os.environ["AWS_ACCESS_KEY_ID"],
                          secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
                          session_token=os.environ.get("AWS_SESSION_TOKEN"))
        return fs.S3FileSystem(**kwargs), f"{self.bucket}/{self.prefix}".rstrip("/")


class LocalStore:
    """A lake in a directory (benchmarks, a laptop without the stack). Writes are atomic (rename)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.uri = self.root.resolve().as_uri() + "/"

    def put(self, key: str, data: bytes, *, expect: str | None = None) -> ObjectInfo:
        path = self.root / key
        if expect is not None:  # one writer process locally: a check before the rename is enough
            now = hashlib.md5(path.read_bytes()).hexdigest() if path.exists() else ABSENT  # noqa: S324
            if now != expect:
                raise ConflictError(f"{key} changed since it was read")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return ObjectInfo(key, hashlib.md5(data).hexdigest(), len(data))  # noqa: S324 (an ETag, as S3's)

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()  # FileNotFoundError when missing

    def list(self, prefix: str) -> list[ObjectInfo]:
        base = self.root / prefix if prefix.endswith("/") else (self.root / prefix).parent
        if not base.exists():
            return []
        out = []
        for path in sorted(base.rglob("*")):
            key = path.relative_to(self.root).as_posix()
            if path.is_file() and key.startswith(prefix) and not path.name.startswith("."):
                out.append(ObjectInfo(key, hashlib.md5(path.read_bytes()).hexdigest(), path.stat().st_size))  # noqa: S324
        return out

    def delete(self, info: ObjectInfo) -> None:
        path = self.root / info.key
        if path.exists() and hashlib.md5(path.read_bytes()).hexdigest() != info.etag:  # noqa: S324
            raise FileExistsError(f"{info.key} changed since it was read")
        path.unlink(missing_ok=True)

    def arrow(self) -> tuple[Any, str]:
        from pyarrow import fs

        return fs.LocalFileSystem(), str(self.root.resolve())


def open_store(uri: str) -> LakeStore:
    """`s3://bucket[/prefix]`, `file:///dir` or a plain directory path."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return S3Store(parsed.netloc, parsed.path)
    if parsed.scheme in ("file", ""):
        return LocalStore(parsed.path if parsed.scheme else uri)
    raise ValueError(f"unsupported lake URI {uri!r} (s3:// or a directory)")


def default_store() -> LakeStore:
    """SWITCHYARD_LAKE_URI, else the data bucket the template declares."""
    from shared.config import get_settings

    s = get_settings()
    return open_store(s.lake_uri or f"s3://{s.data_bucket}")
