from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class EnsembleConfig(AppConfig):
    name = "ensemble"
    verbose_name = "Trio vote history"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Every signal of the app is connected here, once the models are loaded, rather than as a
        # side effect of whichever module happens to be imported first.
        from .catalog.prices import prices_changed
        from .catalog.registry import ensembles_changed
        from .keys import api_keys_changed
        from .models import ApiKey, EnsembleDefinition, EnsembleMember, ModelPrice

        for handler, sender, uid in ((ensembles_changed, EnsembleDefinition, "trio-ensembles-changed"),
                                     (ensembles_changed, EnsembleMember, "trio-ensemble-members-changed"),
                                     (api_keys_changed, ApiKey, "trio-api-keys-changed"),
                                     (prices_changed, ModelPrice, "trio-prices-changed")):
            post_save.connect(handler, sender=sender, dispatch_uid=uid)
            post_delete.connect(handler, sender=sender, dispatch_uid=uid)
