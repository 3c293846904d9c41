"""ASGI entry point: gunicorn's uvicorn worker and the tests serve this `application`."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trio_site.settings")

django_application = get_asgi_application()

from ensemble.middleware import BodySizeLimit  # noqa: E402  (needs the settings configured above)

# Refuses oversized bodies before Django's handler spools them to disk.
application = BodySizeLimit(django_application)
