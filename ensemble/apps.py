from django.apps import AppConfig


class EnsembleConfig(AppConfig):
    name = "ensemble"
    verbose_name = "Trio vote history"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import pricing  # noqa: F401  (connects the signal that refreshes its price cache)
