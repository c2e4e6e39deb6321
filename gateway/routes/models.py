"""GET /v1/models: every model name the gateway routes, with its clinical-use label."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.catalog import Route
from gateway.dependencies import GatewayDep
from gateway.protocol import ModelCardOut, ModelList

router = APIRouter()


@router.get("/v1/models", response_model=ModelList)
async def list_models(gateway: GatewayDep) -> ModelList:
    infos = gateway.catalog.models
    by_name = {info.name: info for info in infos.values()}
    cards = []
    for name, route in gateway.catalog.routes.items():
        if route is Route.PIPELINE:
            clinical = all(i.clinical_use for i in infos.values())
            description = "X-ray pipeline: classifier and ChexFract in parallel, then the report model"
        else:
            clinical, description = by_name[name].clinical_use, by_name[name].description
        cards.append(ModelCardOut(id=name, route=route.value, clinical_use=clinical, description=description))
    return ModelList(data=cards)
