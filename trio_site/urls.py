from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from ensemble.serving.probes import health, health_ready, metrics

urlpatterns = [
    path("v1/", include("ensemble.api.urls")),
    path("health", health, name="health"),
    path("health/ready", health_ready, name="health-ready"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("", include("ensemble.pages.urls")),
    # The admin's "View site" link points here.
    path("", RedirectView.as_view(pattern_name="pages:vote-list"), name="home"),
]
