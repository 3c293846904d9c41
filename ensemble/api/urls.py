from django.urls import path
from drf_spectacular.views import SpectacularJSONAPIView

from ..completion.admission import admitted
from . import feedback, views

urlpatterns = [
    path("chat/completions", admitted(views.ChatCompletionsView.as_view()), name="chat-completions"),
    path("responses", admitted(views.ResponsesView.as_view()), name="responses"),
    path("responses/<str:response_id>", views.ResponseView.as_view(), name="response"),
    path("feedback", feedback.FeedbackView.as_view(), name="feedback"),
    path("models", views.ModelsView.as_view(), name="models"),
    path("models/<path:model>", views.ModelView.as_view(), name="model"),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
]
