"""The judges' audit in the daily rollup: each model's preferences as a voter, per slot, and their
agreement with the winner (leaderboard.judges).

Rollup rows written before hold none of it, so the rollup is forgotten: the leaderboard reads
those days live until `manage.py rollup_votes` rolls them up again.
"""
from django.db import migrations, models


def forget_rollups(apps, schema_editor):
    for name in ("ModelDayRollup", "PairDayRollup", "RollupDay"):
        apps.get_model("ensemble", name).objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ("ensemble", "0013_request_consensus"),
    ]

    operations = [
        migrations.AddField(
            model_name="modeldayrollup",
            name="agreement_ballots",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="modeldayrollup",
            name="agreed_with_winner",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="modeldayrollup",
            name="preference_slots",
            field=models.JSONField(default=dict, help_text='Preferences it gave per slot: {"<candidates shown>:<slot>": count}.'),
        ),
        migrations.RunPython(forget_rollups, migrations.RunPython.noop),
    ]
