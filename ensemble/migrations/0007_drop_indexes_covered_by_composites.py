"""Drop five indexes that another index on the same table already begins with.

Each one was a left prefix of a composite index or unique constraint, so every lookup it served
is served as well by the longer one, while every stored completion paid for it: five more B-trees
updated per write (bench/README.md has the writer's cost before and after).

- ensemble_completionrequest (created_at): request_created_id (created_at, id)
- ensemble_candidate (request_id): candidate_unique_index (request_id, index)
- candidate_model_status (model, status): candidate_model_latency (model, status, latency_ms)
- ensemble_ballot (request_id): ballot_unique_voter (request_id, voter_index)
- ensemble_ballotmark (ballot_id): mark_unique_candidate (ballot_id, candidate_id)

The database side is plain DROP INDEX: AlterField would make SQLite copy all four history tables.
"""
import django.db.models.deletion
from django.db import migrations, models

# (index, table, column): the names Django gave the single-column indexes, the same on SQLite and PostgreSQL.
COVERED = [
    ("ensemble_completionrequest_created_at_2f541951", "ensemble_completionrequest", "created_at"),
    ("ensemble_candidate_request_id_3caca4d1", "ensemble_candidate", "request_id"),
    ("ensemble_ballot_request_id_61f11c81", "ensemble_ballot", "request_id"),
    ("ensemble_ballotmark_ballot_id_942d7ded", "ensemble_ballotmark", "ballot_id"),
]


class Migration(migrations.Migration):

    dependencies = [
        ('ensemble', '0006_drop_unused_mark_index'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='candidate',
            name='candidate_model_status',
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(f'DROP INDEX IF EXISTS "{name}"', f'CREATE INDEX "{name}" ON "{table}" ("{column}")')
                for name, table, column in COVERED
            ],
            state_operations=[
                migrations.AlterField(
                    model_name='ballot',
                    name='request',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='ballots', to='ensemble.completionrequest'),
                ),
                migrations.AlterField(
                    model_name='ballotmark',
                    name='ballot',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='marks', to='ensemble.ballot'),
                ),
                migrations.AlterField(
                    model_name='candidate',
                    name='request',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='candidates', to='ensemble.completionrequest'),
                ),
                migrations.AlterField(
                    model_name='completionrequest',
                    name='created_at',
                    field=models.DateTimeField(),
                ),
            ],
        ),
    ]
