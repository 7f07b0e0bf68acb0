"""`GET /metrics`: the Prometheus text exposition (shared/metrics/prometheus.py), for a management key with
`metrics:read` — or anyone with SWITCHYARD_METRICS_PUBLIC=true; 404 with SWITCHYARD_METRICS=false."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from functions.gateway.deps import scoped
from functions.gateway.state import gateway
from shared.errors import NotFoundError
from shared.keys import ApiKey

router = APIRouter(tags=["metrics"])
_reader = scoped("metrics:read")


async def metrics_reader(request: Request) -> ApiKey | None:
    """The caller's management key with `metrics:read`, unless metrics are public (or off: 404 before any key)."""
    settings = gateway().settings
    if not settings.metrics:
        raise NotFoundError("Metrics are off on this gateway (SWITCHYARD_METRICS=false)",
                            metadata={"reason": "metrics_off"})
    return None if settings.metrics_public else await _reader(request)


metrics_reader.scope = _reader.scope  # type: ignore[attr-defined]  (tests/test_scopes.py reads it)

_EXAMPLE = ('# TYPE switchyard_requests counter\n'
            'switchyard_requests_total{model="sim/fast",provider="sim",app="demo",status="completed",code="200",'
            'error_type=""} 3.0\n')


@router.get("/metrics", summary="Prometheus metrics (text exposition format)",
            response_class=Response, dependencies=[Depends(metrics_reader)],
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}, "example": _EXAMPLE}},
                             "description": "Prometheus text format 0.0.4"}})
async def metrics() -> Response:
    from shared.metrics.prometheus import CONTENT_TYPE, GatewayCollector, exposition  # ~90 ms: at the first scrape

    g = gateway()
    assert g.metrics is not None  # (metrics_reader answered 404 otherwise)
    collector = GatewayCollector(g.metrics, g.chat.routing, g.meter, g.chat.rates)
    return Response(exposition(collector), media_type=CONTENT_TYPE)
