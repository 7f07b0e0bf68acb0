from fastapi import APIRouter

from functions.gateway.state import gateway

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict:
    g = gateway()
    return {"status": "ok", "models": len(g.catalog), "metering_backlog": g.meter.backlog,
            "metering_dead_letters": g.meter.dead_letters.count}
