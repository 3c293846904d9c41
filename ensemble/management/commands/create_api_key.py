"""Create an API key for /v1/ and print it once: `python manage.py create_api_key NAME`."""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from ensemble.keys import api_key_create
from ensemble.models import ApiKey


class Command(BaseCommand):
    help = "Create an API key and print it; only its hash is stored, so it cannot be shown again."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Who or what will use the key, e.g. 'open-webui'.")

    def handle(self, *args, name, **options):
        try:  # the admin's own checks (SQLite would store an empty or a 500-character name)
            name = ApiKey._meta.get_field("name").clean(name.strip(), None)
        except ValidationError as exc:
            raise CommandError(f"NAME: {' '.join(exc.messages)}") from None
        api_key, key = api_key_create(name=name)
        # The key alone on stdout, so that `KEY=$(manage.py create_api_key x)` works; the notice on stderr.
        self.stdout.write(key)
        self.stderr.write(self.style.WARNING(
            f"Created API key '{api_key.name}' ({api_key.prefix}…). It is shown only this once: "
            "store it now. Revoke it in the admin under API keys."))
