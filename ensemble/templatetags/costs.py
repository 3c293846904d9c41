"""`{{ cost|usd }}`: a cost in USD (ensemble.formats.costs) as the pages show it, "unknown" for None."""
from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def usd(cost: Decimal | float | None) -> str:
    """Return `$0.0015` for a cost (no trailing zeros, no exponent), `unknown` for None."""
    if cost is None:
        return "unknown"
    return f"${Decimal(cost).quantize(Decimal('1e-10')).normalize():f}"
