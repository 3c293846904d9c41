"""Migration 0012_ballot_format on rows stored before it: every old ballot was asked in text."""
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("ensemble", "0011_mark_pair_index")]
AFTER = [("ensemble", "0012_ballot_format")]


def migrate(targets):
    """Migrate the test database to `targets`; return the models as they were there (tests/test_cost.py too)."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


def migrate_to_latest() -> None:
    """Migrate the test database back to the latest migrations, for the tests after this one."""
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_old_ballots_keep_their_status_and_are_recorded_as_asked_in_text():
    old = migrate(BEFORE)
    try:
        request = old.get_model("ensemble", "CompletionRequest").objects.create(created_at=timezone.now(), status="ok")
        ballots = old.get_model("ensemble", "Ballot").objects
        ballots.create(request=request, voter_index=0, voter_model="a", status="ok", raw_text="ACCEPTED: 1")
        ballots.create(request=request, voter_index=1, voter_model="b", status="unparseable", error="no ACCEPTED line")

        new = migrate(AFTER)

        rows = new.get_model("ensemble", "Ballot").objects.order_by("voter_index")
        assert [(b.voter_model, b.status, b.error, b.format) for b in rows] == [
            ("a", "ok", "", "text"), ("b", "unparseable", "no ACCEPTED line", "text")]
    finally:
        migrate_to_latest()
