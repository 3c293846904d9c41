"""URLs of the staff pages over the vote history. These paths are part of the product."""
import uuid

from django.urls import path, register_converter

from . import views, whatif

app_name = "pages"


class RequestIdConverter:
    """A request's id in a vote page's path: its UUID, or the `trio-<hex>` id that API clients get
    (in the answer's `id`, the Responses API's, and the logs), so that one can be pasted as it is."""

    regex = r"trio-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

    def to_python(self, value: str) -> uuid.UUID:
        return uuid.UUID(value.removeprefix("trio-"))

    def to_url(self, value) -> str:
        return str(value)


register_converter(RequestIdConverter, "request_id")

urlpatterns = [
    path("votes/", views.vote_list, name="vote-list"),
    path("votes/<request_id:pk>/", views.vote_detail, name="vote-detail"),
    path("votes/<request_id:pk>/feedback/", views.vote_feedback, name="vote-feedback"),
    path("leaderboard/", views.leaderboard, name="leaderboard"),
    path("leaderboard.json", views.leaderboard_json, name="leaderboard-json"),
    path("leaderboard/what-if/", whatif.whatif_page, name="whatif"),
    path("leaderboard/what-if.json", whatif.whatif_json, name="whatif-json"),
]
