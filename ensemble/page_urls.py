"""URLs of the staff pages over the vote history. These paths are part of the product."""
from django.urls import path

from . import pages

app_name = "pages"

urlpatterns = [
    path("votes/", pages.vote_list, name="vote-list"),
    path("votes/<uuid:pk>/", pages.vote_detail, name="vote-detail"),
    path("leaderboard/", pages.leaderboard, name="leaderboard"),
    path("leaderboard.json", pages.leaderboard_json, name="leaderboard-json"),
]
