"""The equipment cost and payback estimator (billing's model, docs/domain.md's cost tables)."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from balans_api.deps import Reader
from balans_api.errors import ERROR_RESPONSES, ApiError
from balans_pricing.estimate_report import EstimateReport, build_report
from balans_pricing.estimator import Building, Heating, Prices

router = APIRouter(tags=["estimator"], responses=ERROR_RESPONSES)


class EstimateRequest(BaseModel):
    """A block to equip; every field has the reference building's default."""

    building: Building = Field(default_factory=Building)
    prices: Prices = Field(default_factory=Prices)
    heating: Heating = Field(default_factory=Heating)
    saving: Decimal = Field(
        Decimal("0.4"), ge=Decimal("0.01"), le=Decimal("0.99"), description="0.4 = 40 % saving."
    )


@router.post("/estimator", response_model=EstimateReport)
async def estimate(body: EstimateRequest, _: Reader) -> EstimateReport:
    """Cost of the five metering variants (1a-2b) in MDL, and the payback in heating
    seasons for each flat size. ``{}`` gives docs/domain.md's reference building."""
    try:
        return build_report(body.building, body.prices, body.heating, body.saving)
    except ArithmeticError as exc:  # decimal.DivisionByZero / InvalidOperation on extremes
        raise ApiError(422, f"inputs outside the estimator's range ({type(exc).__name__})") from exc
    except ValueError as exc:  # inputs that do not fit together, e.g. a flat size missing
        # from gcal_per_month: the estimator's message names it
        raise ApiError(422, str(exc)) from exc
