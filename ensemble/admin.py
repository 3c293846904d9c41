"""Admin: vote history and its feedback read-only, API keys revocable, named ensembles and model prices editable."""
from django.contrib import admin, messages

from .catalog.spec import MAX_MEMBERS
from .keys import api_keys_revoke
from .models import (
    ApiKey, Ballot, BallotMark, Candidate, CompletionRequest, EnsembleDefinition, EnsembleMember, Feedback, ModelPrice,
)


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CandidateInline(ReadOnlyMixin, admin.TabularInline):
    model = Candidate
    fields = ("index", "model", "status", "is_winner", "rank", "accepted_count", "preferred_count",
              "latency_ms", "total_tokens", "cost_usd", "finish_reason", "error", "content", "tool_calls")
    readonly_fields = fields
    extra = 0


class BallotInline(ReadOnlyMixin, admin.TabularInline):
    model = Ballot
    fields = ("voter_index", "voter_model", "status", "shown_order", "latency_ms", "cost_usd", "raw_text", "error")
    readonly_fields = fields
    extra = 0


@admin.register(CompletionRequest)
class CompletionRequestAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("created_at", "prompt_excerpt", "ensemble", "aggregation_method", "status", "winner_model",
                    "voter_count", "consensus_score", "latency_ms", "total_tokens", "cost_total")
    list_filter = ("status", "ensemble", "aggregation_method", "winner_model", "consensus_low", "created_at")
    search_fields = ("prompt_excerpt", "=user")  # the end user, exactly (its index)
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in CompletionRequest._meta.fields]
    inlines = [CandidateInline, BallotInline]
    show_full_result_count = False  # COUNT(*) over a large history is slow and rarely needed


@admin.register(Candidate)
class CandidateAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("request", "index", "model", "status", "is_winner", "accepted_count",
                    "preferred_count", "latency_ms")
    list_filter = ("status", "is_winner", "model")
    search_fields = ("content",)
    list_select_related = ("request",)
    readonly_fields = [f.name for f in Candidate._meta.fields]
    show_full_result_count = False


@admin.register(Ballot)
class BallotAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("request", "voter_model", "status", "latency_ms")
    list_filter = ("status", "format", "voter_model")
    search_fields = ("raw_text",)
    list_select_related = ("request",)
    readonly_fields = [f.name for f in Ballot._meta.fields]
    show_full_result_count = False


@admin.register(BallotMark)
class BallotMarkAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("request", "voter_model", "author_model", "position", "accepted", "preferred",
                    "is_self", "counted")
    list_filter = ("accepted", "preferred", "is_self", "counted", "voter_model", "author_model")
    list_select_related = ("request",)
    readonly_fields = [f.name for f in BallotMark._meta.fields]
    show_full_result_count = False


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Given through POST /v1/feedback or the vote page's form, never here."""

    list_display = ("updated_at", "request", "winner_model", "score", "preferred_candidate", "source", "api_key",
                    "user", "comment")
    list_filter = ("source", "request__winner_model", "request__ensemble", "updated_at")
    search_fields = ("comment",)
    date_hierarchy = "updated_at"
    list_select_related = ("request", "preferred_candidate", "api_key", "user")
    readonly_fields = [f.name for f in Feedback._meta.fields]
    show_full_result_count = False

    @admin.display(description="winner", ordering="request__winner_model")
    def winner_model(self, feedback):
        return feedback.request.winner_model


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created with `manage.py create_api_key` (the only time a key is shown) and revoked here."""

    list_display = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    fields = ("name", "prefix", "key_hash", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # a key made here could never be shown: use the create_api_key command

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: stored requests keep pointing at the key that made them

    # An action without `permissions` is offered to (and run for) anyone who may merely view the
    # list; revoking is a change, so staff with only the view permission must not be able to.
    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        count = api_keys_revoke(queryset)
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


class EnsembleMemberInline(admin.TabularInline):
    model = EnsembleMember
    fields = ("position", "model", "system_prompt")
    extra = 0
    min_num, max_num = 1, MAX_MEMBERS

    def get_formset(self, request, obj=None, **kwargs):
        # The admin passes min_num and max_num but does not enforce them on submitted forms.
        return super().get_formset(request, obj, validate_min=True, validate_max=True, **kwargs)


@admin.register(EnsembleDefinition)
class EnsembleDefinitionAdmin(admin.ModelAdmin):
    """Named ensembles, asked for with `model: "<name>"`; running workers see a change within seconds."""

    list_display = ("name", "aggregation_method", "self_vote", "timeout", "updated_at")
    list_filter = ("aggregation_method",)
    search_fields = ("name", "description", "members__model")
    fields = ("name", "description", "aggregation_method", "judge_model", "synthesize_model", "self_vote", "timeout")
    inlines = [EnsembleMemberInline]


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """Prices that cost a call whose backend states no cost; running workers see a change within seconds."""

    list_display = ("model", "input_usd_per_million", "output_usd_per_million", "updated_at")
    search_fields = ("model",)
    fields = ("model", "input_usd_per_million", "output_usd_per_million")
