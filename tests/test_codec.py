"""DynamoDB attribute values (shared/aws/codec.py): what each Python value is written as, and read back as."""

import enum
from decimal import Decimal

import pytest

from shared.aws.codec import attr, item, plain


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


def test_each_type_is_written_as_its_attribute_value_and_none_is_left_out():
    assert item({"s": "x", "i": 7, "f": 1.5, "tiny": 7e-06, "big": 1e22, "d": Decimal("2.50"), "t": True,
                 "no": False, "none": None, "b": b"\x00", "l": [1, None, "a"], "m": {"k": None, "n": 0}}) == {
        "s": {"S": "x"}, "i": {"N": "7"}, "f": {"N": "1.5"}, "tiny": {"N": "0.000007"},
        "big": {"N": "10000000000000000000000"}, "d": {"N": "2.50"}, "t": {"BOOL": True}, "no": {"BOOL": False},
        "b": {"B": b"\x00"}, "l": {"L": [{"N": "1"}, {"S": "a"}]}, "m": {"M": {"n": {"N": "0"}}}}


def test_subclasses_are_written_as_attr_writes_them():
    values = {"level": Level.HIGH, "name": Name("n"), "tuple": (1, 2)}
    assert item(values) == {k: attr(v) for k, v in values.items()}
    assert item(values)["name"] == {"S": "n"}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), Decimal("NaN")])
def test_a_number_dynamodb_cannot_hold_is_refused(bad):
    with pytest.raises(ValueError):
        item({"x": bad})


def test_a_type_without_an_attribute_value_is_refused():
    with pytest.raises(TypeError):
        item({"x": {1, 2}})


def test_what_is_written_reads_back_as_plain_python():
    record = {"s": "x", "i": 7, "f": 0.25, "t": True, "l": [1, "a"], "m": {"n": 2}}
    assert plain(item(record)) == record
