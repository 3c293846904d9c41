"""Forget the leaderboard rollup so that closed days are counted again without concat's requests.

Rollups written before counted a concat request (ok, but no winner) as a loss for each member;
the leaderboard reads the forgotten days live until they are rolled up again (lazily, or by
`manage.py rollup_votes`).
"""
from django.db import migrations


def forget_rollups(apps, schema_editor):
    for name in ("ModelDayRollup", "PairDayRollup", "RollupDay"):
        apps.get_model("ensemble", name).objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ("ensemble", "0007_drop_indexes_covered_by_composites"),
    ]

    operations = [
        migrations.RunPython(forget_rollups, migrations.RunPython.noop),
    ]
