"""Configuration edited in the admin: named ensembles and their members, and model prices."""
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from ..voting.methods import REGISTRY

# --- named ensembles ---------------------------------------------------------------------------
# Configuration, not history: edited in the admin, read by ensemble.catalog.registry (each process
# keeps them a few seconds). A request records the ensemble's name and member list as they were.


class AggregationMethod(models.TextChoices):
    ACCEPTANCE_VOTING = "acceptance_voting", "acceptance voting: every member votes on every answer"
    JUDGE = "judge", "judge: one extra model picks the best answer"
    SYNTHESIZE = "synthesize", "synthesize: one extra model writes a combined answer"
    RANDOM = "random", "random: one member, chosen before any call, answers alone"
    CONCAT = "concat", "concat: every answer, each under its model's name"


class EnsembleDefinition(models.Model):
    """A named ensemble clients ask for with `model: "<name>"` or `model: "trio:<name>"`."""

    name = models.CharField(
        max_length=100, unique=True,
        validators=[RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._-]*\Z", "Letters, digits, '.', '_' and '-' only.")],
        help_text="What clients send as `model`. A row named `trio` replaces the TRIO_MODELS default; "
                  "a name that is also a backend model hides that model from pass-through.")
    description = models.TextField(blank=True)
    aggregation_method = models.CharField(max_length=32, choices=AggregationMethod.choices,
                                          default=AggregationMethod.ACCEPTANCE_VOTING)
    judge_model = models.CharField(max_length=200, blank=True, help_text="Backend model; required for judge.")
    synthesize_model = models.CharField(max_length=200, blank=True, help_text="Backend model; required for synthesize.")
    self_vote = models.BooleanField(default=True, help_text="Count each voter's marks on its own answer.")
    timeout = models.FloatField(null=True, blank=True, validators=[MinValueValidator(0.001)],
                                help_text="Seconds allowed for each backend call; empty: TRIO_TIMEOUT.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "ensemble"

    def __str__(self):
        return self.name

    def clean(self):
        # .get: an unknown method is already the choices' error (clean_fields), not this one's.
        method = REGISTRY.get(self.aggregation_method)
        if method and method.needs_model and not getattr(self, method.needs_model).strip():
            raise ValidationError({method.needs_model: f"The {method.name} method needs a {method.name} model."})


class EnsembleMember(models.Model):
    """One backend model of a named ensemble, with the system prompt it gets (if any)."""

    ensemble = models.ForeignKey(EnsembleDefinition, on_delete=models.CASCADE, related_name="members")
    position = models.PositiveSmallIntegerField(default=0, help_text="Order in the ensemble, lowest first: the tie-break.")
    model = models.CharField(max_length=200, help_text="Backend model name.")
    system_prompt = models.TextField(blank=True, help_text="Prepended as a system message to this member's conversation.")

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return self.model


# --- model prices ------------------------------------------------------------------------------
# Configuration, edited in the admin, read by ensemble.catalog.prices (each process keeps them a few seconds).


class ModelPrice(models.Model):
    """A backend model's price, which costs its calls whose backend states no cost (ensemble.formats.costs)."""

    model = models.CharField(max_length=200, unique=True, help_text="Backend model name, as the ensemble names it.")
    input_usd_per_million = models.DecimalField(max_digits=18, decimal_places=10, validators=[MinValueValidator(0)],
                                                help_text="USD per million prompt tokens.")
    output_usd_per_million = models.DecimalField(max_digits=18, decimal_places=10, validators=[MinValueValidator(0)],
                                                 help_text="USD per million completion tokens.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]

    def __str__(self):
        return self.model
