"""The head-to-head's pair rule: its covering index, and the rollup counted under the old rule forgotten.

The head-to-head now follows the PAIR RULE of ensemble.selectors, which ranks every mark of a
ballot by `accepted` and `preferred` and no longer reads `counted`: index mark_ballot_rank
(ballot, accepted, preferred, author_model) replaces mark_ballot_verdict (ballot, counted,
preferred, author_model), so the other marks of a ballot are still read from the index alone
(live part of the leaderboard over ~1,700 requests, SQLite: 68-79 ms without it, 38-49 ms with).

Rollups written before credited each ballot's preferred candidate with a win over every other
candidate it judged, the voter's preference for itself included (a judge that always prefers
itself beat everyone). Every rollup row goes, not only the pairs: a day's RollupDay marker says
all of its rows are stored. The leaderboard reads the forgotten days live until they are rolled
up again (lazily, on the next page view, or by `manage.py rollup_votes`).
"""
from django.db import migrations, models


def forget_rollups(apps, schema_editor):
    for name in ("ModelDayRollup", "PairDayRollup", "RollupDay"):
        apps.get_model("ensemble", name).objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ("ensemble", "0010_call_status_too_large"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="ballotmark", name="mark_ballot_verdict"),
        migrations.AddIndex(
            model_name="ballotmark",
            index=models.Index(fields=["ballot", "accepted", "preferred", "author_model"], name="mark_ballot_rank"),
        ),
        migrations.RunPython(forget_rollups, migrations.RunPython.noop),
    ]
