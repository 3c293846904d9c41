"""Create the first admin user, once: `python manage.py ensure_admin` (run by `make run`)."""
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a superuser if none exists (password from TRIO_ADMIN_PASSWORD, else generated and printed)."

    def handle(self, *args, **options):
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            self.stdout.write("An admin user already exists; nothing to do.")
            return
        password = settings.TRIO_ADMIN_PASSWORD or secrets.token_urlsafe(18)
        users.objects.create_superuser(settings.TRIO_ADMIN_USERNAME, email="", password=password)
        if settings.TRIO_ADMIN_PASSWORD:
            self.stdout.write(f"Created admin user '{settings.TRIO_ADMIN_USERNAME}' (password from TRIO_ADMIN_PASSWORD).")
        else:
            self.stdout.write(self.style.WARNING(
                f"Created admin user '{settings.TRIO_ADMIN_USERNAME}' with password: {password}\n"
                "It is shown only this once; change it in the admin."))
