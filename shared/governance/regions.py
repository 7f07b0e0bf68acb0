"""Where an endpoint serves from, and whether that satisfies a residency constraint. Pure; no AWS.

Region names (one convention for providers, endpoints, keys and the organisation setting):
- an AWS-style region, `us-east-1`, `eu-west-1`, `ap-northeast-1`…: that region exactly;
- a coarse area, the prefix of those names (`us`, `eu`, `ap`, `ca`, `sa`, `me`, `af`, `il`, `mx`, `cn`):
  on an endpoint, "somewhere in that area, region unknown"; in a constraint, "any region in that area";
- `global`: on an endpoint, "served from anywhere" (no location promised); in a constraint, "any endpoint
  that declares where it serves from".

A constraint region `wanted` is met by an endpoint region `served` when they are equal, or `wanted` is an area
and `served` a region in it (`us` is met by `us-east-1` and `us-gov-west-1`), or `wanted` is `global`. An area
never meets a region (`us-east-1` is not met by an endpoint that says only `us`: it may be us-west-2), and
`global` on an endpoint meets only `global`. An endpoint that declares no region meets no constraint.
"""

from __future__ import annotations

import re
from functools import lru_cache

AREAS = frozenset(("us", "eu", "ap", "ca", "sa", "me", "af", "il", "mx", "cn"))
GLOBAL = "global"
_AWS_STYLE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
# Bedrock cross-region inference profiles (`us.anthropic.claude-…`) serve from any region of their area
_PROFILES = {"us.": "us", "eu.": "eu", "apac.": "ap", "ca.": "ca", "jp.": "ap", "au.": "ap", "global.": GLOBAL}


def region(value: str) -> str:
    """A region name as the convention above spells it (the validator of every place that takes one)."""
    if not isinstance(value, str) or not (_AWS_STYLE.match(value) or value in AREAS or value == GLOBAL):
        raise ValueError(f"{value!r} is not a region: an AWS-style name (us-east-1, eu-west-1), an area "
                         f"({', '.join(sorted(AREAS))}) or global")
    return value


def within(wanted: str, served: str) -> bool:
    if wanted == served or wanted == GLOBAL:
        return True
    return wanted in AREAS and served.startswith(wanted + "-")


@lru_cache(maxsize=4096)
def meets(wanted: tuple[str, ...], served: tuple[str, ...]) -> bool:
    """True when some region the endpoint serves from meets some region of the constraint."""
    return any(within(w, s) for w in wanted for s in served)


def bedrock_regions(region_name: str | None, upstream_model: str) -> tuple[str, ...]:
    """Where a Bedrock endpoint serves from: its profile's area for a cross-region inference profile, else the
    provider's region (none when the provider names none: the function's own region is not known here)."""
    for prefix, area in _PROFILES.items():
        if upstream_model.startswith(prefix):
            return (area,)
    return (region_name,) if region_name else ()
