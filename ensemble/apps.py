from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class EnsembleConfig(AppConfig):
    name = "ensemble"
    verbose_name = "Trio vote history"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Every signal of the app is connected here, once the models are loaded, rather than as a
        # side effect of whichever module happens to be imported first.
        from .catalog.registry import ensembles_changed
        from .models import EnsembleDefinition, EnsembleMember

        for sender, uid in ((EnsembleDefinition, "trio-ensembles-changed"),
                            (EnsembleMember, "trio-ensemble-members-changed")):
            post_save.connect(ensembles_changed, sender=sender, dispatch_uid=uid)
            post_delete.connect(ensembles_changed, sender=sender, dispatch_uid=uid)
