from django.urls import path

from . import views

urlpatterns = [
    path("chat/completions", views.ChatCompletionsView.as_view(), name="chat-completions"),
    path("models", views.ModelsView.as_view(), name="models"),
]
