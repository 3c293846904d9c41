"""Costs of backend calls (issue 24): rows stored before have unknown cost (null), and rolled-up days
stay valid as they are: their calls had no known cost, which the rollup's zero counts say."""
import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ensemble', '0015_feedback'),
    ]

    operations = [
        migrations.CreateModel(
            name='ModelPrice',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('model', models.CharField(help_text='Backend model name, as the ensemble names it.', max_length=200, unique=True)),
                ('input_usd_per_million', models.DecimalField(decimal_places=10, help_text='USD per million prompt tokens.', max_digits=18, validators=[django.core.validators.MinValueValidator(0)])),
                ('output_usd_per_million', models.DecimalField(decimal_places=10, help_text='USD per million completion tokens.', max_digits=18, validators=[django.core.validators.MinValueValidator(0)])),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['model'],
            },
        ),
        migrations.AddField(
            model_name='ballot',
            name='cost_usd',
            field=models.DecimalField(blank=True, decimal_places=10, help_text='USD; empty: unknown.', max_digits=18, null=True),
        ),
        migrations.AddField(
            model_name='candidate',
            name='cost_usd',
            field=models.DecimalField(blank=True, decimal_places=10, help_text="USD; a nested ensemble's is its whole request's. Empty: unknown.", max_digits=18, null=True),
        ),
        migrations.AddField(
            model_name='completionrequest',
            name='cost_total',
            field=models.DecimalField(blank=True, decimal_places=10, help_text="USD: the sum of its calls' known costs; empty when none is known.", max_digits=18, null=True),
        ),
        migrations.AddField(
            model_name='completionrequest',
            name='cost_unknown_calls',
            field=models.PositiveIntegerField(default=0, help_text='Its calls whose cost is unknown.'),
        ),
        migrations.AddField(
            model_name='modeldayrollup',
            name='ballot_cost_usd',
            field=models.DecimalField(decimal_places=10, default=0, help_text='The known costs of its ballots, USD.', max_digits=18),
        ),
        migrations.AddField(
            model_name='modeldayrollup',
            name='ballot_costed_calls',
            field=models.PositiveIntegerField(default=0, help_text='Its ballots with a known cost.'),
        ),
        migrations.AddField(
            model_name='modeldayrollup',
            name='generation_cost_usd',
            field=models.DecimalField(decimal_places=10, default=0, help_text='The known costs of its candidates, USD.', max_digits=18),
        ),
        migrations.AddField(
            model_name='modeldayrollup',
            name='generation_costed_calls',
            field=models.PositiveIntegerField(default=0, help_text='Its candidates with a known cost.'),
        ),
        migrations.CreateModel(
            name='EnsembleDayRollup',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('ensemble', models.CharField(max_length=200)),
                ('costed_requests', models.PositiveIntegerField()),
                ('cost_usd', models.DecimalField(decimal_places=10, max_digits=18)),
            ],
            options={
                'ordering': ['day', 'ensemble'],
                'constraints': [models.UniqueConstraint(fields=('day', 'ensemble'), name='ensemble_day_rollup_unique')],
            },
        ),
    ]
