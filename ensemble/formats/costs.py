"""What a backend call cost, in USD, as plain values (no ORM, no HTTP).

A call's cost is, in this order: what the backend said it cost (LiteLLM's
`x-litellm-response-cost` header, `cost_from_header`); else its usage priced by the model's
admin-edited `ModelPrice` (`call_cost`); else unknown, None, which is never counted as 0. Costs are
Decimals with the cost columns' 10 decimal places, so that sums are exact on PostgreSQL.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

COST_PLACES = Decimal("1e-10")  # the cost columns' decimal_places
# No single call costs anywhere near this; a larger figure is a backend's bug, and a request's sum
# of such figures must still fit the columns (max_digits=18: below 10**8 USD).
MAX_CALL_COST_USD = Decimal(10_000)
MILLION = Decimal(1_000_000)


def cost_bounded(cost: Decimal) -> Decimal | None:
    """Return `cost` rounded to the columns' places, or None when it is no plausible call's cost
    (NaN, infinite, negative, or over MAX_CALL_COST_USD)."""
    if not cost.is_finite() or cost < 0 or cost > MAX_CALL_COST_USD:
        return None
    return cost.quantize(COST_PLACES)


def cost_from_header(value: str | None) -> Decimal | None:
    """Return the cost a backend stated in its response-cost header (a decimal string), or None
    when it stated none or something that is no cost (garbage is unknown, never an error)."""
    if value is None or len(value) > 64:
        return None
    try:
        return cost_bounded(Decimal(value.strip()))
    except InvalidOperation:
        return None


@dataclass(frozen=True)
class Price:
    """One model's prices, in USD per million tokens."""

    input_usd_per_million: Decimal
    output_usd_per_million: Decimal

    def cost_of(self, prompt_tokens: int, completion_tokens: int) -> Decimal | None:
        """Return what these tokens cost; None when the call reported no tokens at all (a backend
        without usage), since zero tokens would price an unknown cost at 0."""
        if not (prompt_tokens or completion_tokens):
            return None
        return cost_bounded((prompt_tokens * self.input_usd_per_million
                             + completion_tokens * self.output_usd_per_million) / MILLION)


def call_cost(stated: Decimal | None, model: str, usage, prices: Mapping[str, Price]) -> Decimal | None:
    """Return one answered call's cost: `stated` by the backend, else `usage` (a formats Usage)
    priced by `prices[model]`, else None."""
    if stated is not None:
        return stated
    price = prices.get(model)
    return price.cost_of(usage.prompt_tokens, usage.completion_tokens) if price else None


def cost_sum(costs: Iterable[Decimal | None]) -> tuple[Decimal | None, int]:
    """Return the sum of the known costs (None when none is known) and how many are unknown."""
    total, unknown = None, 0
    for cost in costs:
        if cost is None:
            unknown += 1
        else:
            total = cost if total is None else total + cost
    return total, unknown


def cost_number(cost: Decimal | None) -> float | None:
    """Return `cost` as a JSON number (a float; DRF would write a Decimal as a string)."""
    return None if cost is None else float(cost)
