from django.apps import AppConfig


class EnsembleConfig(AppConfig):
    name = "ensemble"
    verbose_name = "Trio vote history"
    default_auto_field = "django.db.models.BigAutoField"
