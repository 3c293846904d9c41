"""Create the first admin user, once: `python manage.py ensure_admin` (run by `make run`)."""
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create a superuser if none exists (password from TRIO_ADMIN_PASSWORD, else generated and printed)."

    def handle(self, *args, **options):
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            self.stdout.write("An admin user already exists; nothing to do.")
            return
        username = settings.TRIO_ADMIN_USERNAME
        self._check_username(users, username)
        if settings.TRIO_ADMIN_PASSWORD:
            self._check_password(users(**{users.USERNAME_FIELD: username}), settings.TRIO_ADMIN_PASSWORD)
        password = settings.TRIO_ADMIN_PASSWORD or secrets.token_urlsafe(18)
        users.objects.create_superuser(username, email="", password=password)
        if settings.TRIO_ADMIN_PASSWORD:
            self.stdout.write(f"Created admin user '{username}' (password from TRIO_ADMIN_PASSWORD).")
        else:
            self.stdout.write(self.style.WARNING(
                f"Created admin user '{username}' with password: {password}\n"
                "It is shown only this once; change it in the admin."))

    def _check_password(self, user, password: str) -> None:
        """Refuse a weak TRIO_ADMIN_PASSWORD in production (the admin shows every conversation);
        elsewhere, say what is weak about it and go on."""
        try:
            validate_password(password, user=user)
        except ValidationError as exc:
            problems = " ".join(exc.messages)
            if settings.TRIO_ENV == "production":
                raise CommandError(f"TRIO_ADMIN_PASSWORD is too weak for production: {problems}") from None
            self.stderr.write(self.style.WARNING(f"TRIO_ADMIN_PASSWORD is weak: {problems}"))

    def _check_username(self, users, username: str) -> None:
        """Raise CommandError unless a superuser named `username` can be created."""
        if not username.strip():
            raise CommandError("TRIO_ADMIN_USERNAME is empty: set it to the admin's user name, "
                               "or unset it for 'admin'.")
        # Not promoted silently: whoever holds that account would become an admin unannounced.
        if users.objects.filter(**{users.USERNAME_FIELD: username}).exists():
            raise CommandError(
                f"A user named '{username}' exists but is not a superuser, so no admin was created. "
                "Set TRIO_ADMIN_USERNAME to another name, or make that user a superuser yourself "
                f"(manage.py shell: set is_superuser and is_staff on User '{username}').")
