"""The admin-edited model prices (`ModelPrice`), read once per request from a per-process cache.

The cache (registry.ConfigCache) keeps the prices `ttl` seconds; a save or delete in this process
clears it at once (`prices_changed`, connected in EnsembleConfig.ready), other processes see an admin change within the ttl. Prices
only ever price a call whose backend stated no cost (formats.costs), so a database that is away
leaves those calls' cost unknown rather than failing the request.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

from django.db import DatabaseError

from ..db import releases_connection
from ..formats.costs import Price
from ..models import ModelPrice
from .registry import ConfigCache

logger = logging.getLogger(__name__)


@releases_connection
def _load_prices() -> dict[str, Price]:
    """Return every model's price, by model name (one query)."""
    return {row.model: Price(row.input_usd_per_million, row.output_usd_per_million)
            for row in ModelPrice.objects.all()}


price_cache = ConfigCache(_load_prices, "the model prices")


async def prices_current() -> Mapping[str, Price]:
    """Return the prices by model name; {} (every unstated cost unknown) if they cannot be read."""
    try:
        return await price_cache.rows()
    except DatabaseError:
        logger.warning("could not read the model prices; unstated costs are unknown", exc_info=True)
        return {}


def prices_changed(**kwargs) -> None:
    """Forget the loaded prices (connected in EnsembleConfig.ready to saves and deletes of ModelPrice)."""
    price_cache.clear()
