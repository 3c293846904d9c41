from django.urls import path
from drf_spectacular.views import SpectacularJSONAPIView

from . import views

urlpatterns = [
    path("chat/completions", views.ChatCompletionsView.as_view(), name="chat-completions"),
    path("models", views.ModelsView.as_view(), name="models"),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
]
