"""Sampler columns: values drawn without a model, deterministic under the job's seed.

Every cell has its own random stream, keyed by (seed, column, row, attempt): a value does not depend on the
order rows are generated in, on concurrency, or on which row groups a resumed job still has to make. Each
sampler is a function `(params, rng, row) -> value`; `row` holds the columns already made for the row (a
subcategory reads its parent there).
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

Sampler = Callable[[Any, random.Random, dict[str, Any]], Any]


def cell_rng(seed: int, column: str, row: int, attempt: int) -> random.Random:
    digest = hashlib.blake2b(f"{seed}|{column}|{row}|{attempt}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _category(p: Any, rng: random.Random, row: dict[str, Any]) -> Any:
    if p.weights:
        return rng.choices(p.values, weights=p.weights)[0]
    return rng.choice(p.values)


def _subcategory(p: Any, rng: random.Random, row: dict[str, Any]) -> Any:
    parent = row[p.category]
    return rng.choice(p.values[str(parent)])


def _uniform(p: Any, rng: random.Random, row: dict[str, Any]) -> float:
    return rng.uniform(p.low, p.high)


def _gaussian(p: Any, rng: random.Random, row: dict[str, Any]) -> float:
    return rng.gauss(p.mean, p.stddev)


def _bernoulli(p: Any, rng: random.Random, row: dict[str, Any]) -> int:
    return int(rng.random() < p.p)


def _binomial(p: Any, rng: random.Random, row: dict[str, Any]) -> int:
    return sum(rng.random() < p.p for _ in range(p.n))


def _poisson(p: Any, rng: random.Random, row: dict[str, Any]) -> int:
    """Knuth's method for small means, a rounded normal approximation above 30 (both exact enough for data)."""
    if p.mean > 30:
        return max(0, round(rng.gauss(p.mean, math.sqrt(p.mean))))
    limit, k, product = math.exp(-p.mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


_UNIT_SECONDS = {"Y": 365 * 86400, "M": 30 * 86400, "D": 86400, "h": 3600, "m": 60, "s": 1}


def _datetime(p: Any, rng: random.Random, row: dict[str, Any]) -> datetime:
    """A moment from start (inclusive) to end (exclusive, as Data Designer's), whole in `unit`."""
    start, end = _parse_time(p.start), _parse_time(p.end)
    step = _UNIT_SECONDS[p.unit]
    steps = max(1, -(-int((end - start).total_seconds()) // step))
    return start + timedelta(seconds=step * rng.randrange(steps))


def _parse_time(text: str) -> datetime:
    """ISO 8601, as naive UTC (an offset is converted)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def _uuid(p: Any, rng: random.Random, row: dict[str, Any]) -> str:
    value = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if p.short_form:
        value = value.replace("-", "")[:8]
    if p.uppercase:
        value = value.upper()
    return f"{p.prefix or ''}{value}"


# Data Designer's person_from_faker fields, in its order
PERSON_FIELDS = ("uuid", "locale", "first_name", "last_name", "middle_name", "sex", "street_number", "street_name",
                 "city", "state", "postcode", "age", "birth_date", "country", "marital_status", "education_level",
                 "unit", "occupation", "phone_number", "bachelors_field")
_MARITAL = ("never_married", "married_present", "separated", "widowed", "divorced")
_EDUCATION = ("less_than_9th", "9th_12th_no_diploma", "high_school", "some_college", "associates", "bachelors",
              "graduate")
_FIELDS = ("stem", "business", "education", "arts_humanities", "stem_related")


_fakers = threading.local()  # one Faker a locale and thread: it is reseeded for every cell


def _faker(locale: str) -> Any:
    by_locale = getattr(_fakers, "by_locale", None)
    if by_locale is None:
        by_locale = _fakers.by_locale = {}
    if locale not in by_locale:
        from faker import Faker

        by_locale[locale] = Faker(locale)
    return by_locale[locale]


def _person(p: Any, rng: random.Random, row: dict[str, Any]) -> dict[str, Any]:
    """A person from Faker in the given locale, with sex, age and city drawn from the params."""
    fake = _faker(p.locale)
    fake.seed_instance(rng.getrandbits(64))
    sex = p.sex or rng.choice(("Male", "Female"))
    age = rng.randint(p.age_range[0], p.age_range[1])
    birth = datetime(2026, 1, 1) - timedelta(days=age * 365 + rng.randint(0, 364))
    city = rng.choice(p.city) if isinstance(p.city, list) else p.city
    education = rng.choice(_EDUCATION) if age >= 18 else None
    return {"uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "locale": p.locale,
            "first_name": fake.first_name_male() if sex == "Male" else fake.first_name_female(),
            "last_name": fake.last_name(), "middle_name": None, "sex": sex,
            "street_number": fake.building_number(), "street_name": fake.street_name(),
            "city": city or fake.city(), "state": _optional(fake, "state"), "postcode": fake.postcode(),
            "age": age, "birth_date": birth.date().isoformat(), "country": _optional(fake, "current_country"),
            "marital_status": rng.choice(_MARITAL) if age >= 18 else "never_married", "education_level": education,
            "unit": "", "occupation": fake.job() if age >= 18 else None,
            "phone_number": fake.phone_number() if age >= 18 else None,
            "bachelors_field": rng.choice(_FIELDS) if education in ("bachelors", "graduate") else None}


def _optional(fake: Any, provider: str) -> str | None:
    try:
        return getattr(fake, provider)()
    except AttributeError:  # not every locale has states
        return None


SAMPLERS: dict[str, Sampler] = {
    "category": _category, "subcategory": _subcategory, "uniform": _uniform, "gaussian": _gaussian,
    "bernoulli": _bernoulli, "binomial": _binomial, "poisson": _poisson, "datetime": _datetime, "uuid": _uuid,
    "person_from_faker": _person,
}
