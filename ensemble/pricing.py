"""The admin-edited model prices (`ModelPrice`), read once per request from a per-process cache.

The cache (ensembles.ConfigCache) keeps the prices `ttl` seconds; a save or delete in this process
clears it at once (the signal below), other processes see an admin change within the ttl. Prices
only ever price a call whose backend stated no cost (ensemble.costs), so a database that is away
leaves those calls' cost unknown rather than failing the request.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

from django.db import DatabaseError
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .costs import Price
from .db import releases_connection
from .ensembles import ConfigCache
from .models import ModelPrice

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


@receiver([post_save, post_delete], sender=ModelPrice, dispatch_uid="trio-prices-changed")
def _prices_changed(**kwargs) -> None:
    price_cache.clear()
