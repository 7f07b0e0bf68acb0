"""DynamoDB attribute values, both ways: the one serialiser of every write path (boto3 calls and the hand-signed
metering transactions) and the one reader of every item.

Numbers are written in plain decimal notation: `repr(7e-06)` is `'7e-06'`, which DynamoDB accepts but moto's
`ADD` does not (it runs `int()` on a number without a dot), and one such value once stalled the local meter.
Reading never fails on a stored value: a number DynamoDB holds with more digits than a float is read as the
nearest float (boto3's deserialiser raises `Inexact` on more than 38 digits, which once made a key unreadable).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any


def number(value: int | float | Decimal) -> str:
    """A finite number as DynamoDB's `N` string, in plain decimal notation."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"DynamoDB cannot store {value!r}")
        text = repr(value)
        if "e" not in text:
            return text
        value = Decimal(text)
    if not value.is_finite():
        raise ValueError(f"DynamoDB cannot store {value!r}")
    return format(value, "f")


def attr(value: Any) -> dict[str, Any] | None:
    """A Python value as a DynamoDB attribute value (None: leave the attribute out)."""
    if value is None:
        return None
    if value is True or value is False:
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, (int, float, Decimal)):
        return {"N": number(value)}
    if isinstance(value, dict):
        return {"M": item(value)}
    if isinstance(value, (list, tuple)):
        return {"L": [a for v in value if (a := attr(v)) is not None]}
    if isinstance(value, (bytes, bytearray)):
        return {"B": bytes(value)}
    if isinstance(value, (set, frozenset)) and value and all(isinstance(v, str) for v in value):
        return {"SS": sorted(value)}  # a string set (DynamoDB has no empty sets)
    raise TypeError(f"no DynamoDB attribute for {type(value).__name__}")


def item(data: dict[str, Any]) -> dict[str, Any]:
    """A dict as a DynamoDB item; None values are left out. The common types are written here, as `attr` would
    write them, without a call each (`type(v) is`: a subclass, or any other type, goes through `attr`): a usage
    record has some forty attributes, and the meter writes one for every call (10.1 → 6.5 µs a record)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        kind = type(v)
        if kind is str:
            out[k] = {"S": v}
        elif v is None:
            continue
        elif kind is int:
            out[k] = {"N": str(v)}
        elif kind is float:
            out[k] = {"N": number(v)}
        elif kind is bool:
            out[k] = {"BOOL": v}
        elif (a := attr(v)) is not None:
            out[k] = a
    return out


def read_number(text: str) -> int | float:
    """An `N` string as an int when it is one that JSON encoders take (64 bits), else a float; never raises for
    what DynamoDB can hold."""
    if "." not in text and "e" not in text and "E" not in text:
        whole = int(text)
        if -2 ** 63 <= whole < 2 ** 63:
            return whole
    as_float = float(text)
    return int(as_float) if as_float.is_integer() and abs(as_float) < 2 ** 53 else as_float


def value(attribute: dict[str, Any]) -> Any:
    """A DynamoDB attribute value as plain Python (ints and floats, not Decimals)."""
    (kind, raw), = attribute.items()
    if kind == "S":
        return raw
    if kind == "N":
        return read_number(raw)
    if kind == "BOOL":
        return raw
    if kind == "M":
        return plain(raw)
    if kind == "L":
        return [value(a) for a in raw]
    if kind == "NULL":
        return None
    if kind == "SS":
        return set(raw)
    if kind == "NS":
        return {read_number(n) for n in raw}
    return raw  # B, BS: bytes as botocore decoded them


def plain(data: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as a plain dict."""
    return {k: value(a) for k, a in data.items()}
