"""GET /v1/models: every model name the gateway routes, with its clinical-use label and licence."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.catalog import Catalog, Route
from gateway.dependencies import GatewayDep, caller_of
from gateway.protocol import ModelCardOut, ModelList

router = APIRouter()


@router.get("/v1/models", response_model=ModelList)
async def list_models(request: Request, gateway: GatewayDep) -> ModelList:
    """The models this caller may call."""
    caller = caller_of(request)
    infos = gateway.catalog.models
    by_name = {info.name: info for info in infos.values()}
    cards = []
    for name, route in gateway.catalog.routes.items():
        if not caller.may(route.permission, name):
            continue
        if route is Route.PIPELINE:
            cards.append(_pipeline_card(name, gateway.catalog))
            continue
        label = by_name[name].model_dump(include={"clinical_use", "description", "licence", "commercial_use"})
        cards.append(ModelCardOut(id=name, route=route.value, **label))
    return ModelList(data=cards)


def _pipeline_card(name: str, catalog: Catalog) -> ModelCardOut:
    """The pipeline is as cleared, and as licensed, as the least of its models."""
    infos = list(catalog.models.values())
    return ModelCardOut(
        id=name,
        route=Route.PIPELINE.value,
        clinical_use=catalog.clinical_use,
        description="X-ray pipeline: classifier and ChexFract in parallel, then the report model",
        licence="; ".join(f"{i.name}: {i.licence or 'unknown (no model card)'}" for i in infos),
        commercial_use=all(i.commercial_use for i in infos),
    )
