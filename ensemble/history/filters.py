"""The request filters that the history pages, the leaderboard (page and JSON) and the export share:

    ?tag=key:value    a `metadata` pair of the request (repeatable: every one must match); split on
                      the first colon, so a value may hold colons and a key may not
    ?user=            the request's `user`
    ?key=             the name of the API key that made it (staff only: a key's name is not for
                      another key's scripts to probe)

`RequestFilter.from_query` is the one parser; `RequestFilter.q` the one condition on CompletionRequest.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from functools import reduce

from django.db.models import Q

from ..models import ApiKey, CompletionRequest, RequestTag

MAX_TAG_FILTERS = 16  # as many as a request can have metadata keys
TAG_KEY_LENGTH = RequestTag._meta.get_field("key").max_length
TAG_VALUE_LENGTH = RequestTag._meta.get_field("value").max_length
USER_LENGTH = CompletionRequest._meta.get_field("user").max_length
KEY_NAME_LENGTH = ApiKey._meta.get_field("name").max_length


class FilterError(ValueError):
    """A filter value that cannot be applied: `param` names the query parameter; `forbidden` means
    the caller may not use it (a 403, not a 400)."""

    def __init__(self, param: str, message: str, *, forbidden: bool = False):
        super().__init__(message)
        self.param, self.forbidden = param, forbidden


@dataclass(frozen=True)
class RequestFilter:
    tags: tuple[tuple[str, str], ...] = ()
    user: str = ""
    key: str = ""

    @classmethod
    def from_query(cls, query, *, staff: bool = True) -> RequestFilter:
        """Return the filter a query string (a QueryDict, or a dict of lists) asks for, or raise FilterError."""
        raw_tags = _values(query, "tag")
        if len(raw_tags) > MAX_TAG_FILTERS:
            raise FilterError("tag", f"At most {MAX_TAG_FILTERS} tag filters.")
        tags = tuple(dict.fromkeys(_tag(raw) for raw in raw_tags if raw))  # in order, each once
        user = _one(query, "user", USER_LENGTH)
        key = _one(query, "key", KEY_NAME_LENGTH)
        if key and not staff:
            raise FilterError("key", "Only staff may filter by API key.", forbidden=True)
        return cls(tags=tags, user=user, key=key)

    def __bool__(self) -> bool:
        return bool(self.tags or self.user or self.key)

    def q(self) -> Q:
        """Return the condition on CompletionRequest: every tag, the user and the key's name."""
        parts = [Q(pk__in=RequestTag.objects.filter(key=key, value=value).values("request_id"))
                 for key, value in self.tags]
        if self.user:
            parts.append(Q(user=self.user))
        if self.key:
            parts.append(Q(api_key__name=self.key))  # names are not unique: every key of that name
        return reduce(operator.and_, parts, Q())

    def query_items(self) -> list[tuple[str, str]]:
        """Return the filter as query-string pairs, for links that keep it (`urlencode`)."""
        items = [("tag", f"{key}:{value}") for key, value in self.tags]
        return items + [(name, value) for name, value in (("user", self.user), ("key", self.key)) if value]

    @property
    def tag_texts(self) -> list[str]:
        return [f"{key}:{value}" for key, value in self.tags]


def _values(query, name: str) -> list[str]:
    values = query.getlist(name) if hasattr(query, "getlist") else query.get(name) or []
    return [values] if isinstance(values, str) else list(values)


def _one(query, name: str, limit: int) -> str:
    values = _values(query, name)
    value = values[-1] if values else ""  # the last one, as QueryDict.get does
    if len(value) > limit:
        raise FilterError(name, f"{name} must be at most {limit} characters.")
    return value


def _tag(raw: str) -> tuple[str, str]:
    key, colon, value = raw.partition(":")
    if not colon or not key:
        raise FilterError("tag", f"A tag filter is key:value, not {raw[:80]!r}.")
    if len(key) > TAG_KEY_LENGTH or len(value) > TAG_VALUE_LENGTH:
        raise FilterError("tag", f"A tag's key is at most {TAG_KEY_LENGTH} characters, its value "
                                 f"at most {TAG_VALUE_LENGTH}.")
    return key, value
