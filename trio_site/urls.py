from django.contrib import admin
from django.urls import include, path

from ensemble.views import health

urlpatterns = [
    path("v1/", include("ensemble.api.urls")),
    path("health", health, name="health"),
    path("admin/", admin.site.urls),
]
