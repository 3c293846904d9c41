"""Forget the leaderboard rollup so that closed days' head-to-head is counted again by the pair rule.

Rollups written before credited each ballot's preferred candidate with a win over every other
candidate it judged, the voter's own preference for itself included (a judge that always prefers
itself beat everyone); the head-to-head now follows the PAIR RULE of ensemble.selectors. Every
rollup row goes, not only the pairs: a day's RollupDay marker says all of its rows are stored. The
leaderboard reads the forgotten days live until they are rolled up again (lazily, on the next
page view, or by `manage.py rollup_votes`).
"""
from django.db import migrations


def forget_rollups(apps, schema_editor):
    for name in ("ModelDayRollup", "PairDayRollup", "RollupDay"):
        apps.get_model("ensemble", name).objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ("ensemble", "0009_candidate_tool_calls"),
    ]

    operations = [
        migrations.RunPython(forget_rollups, migrations.RunPython.noop),
    ]
