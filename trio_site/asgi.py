"""ASGI entry point: gunicorn's uvicorn worker and the tests serve this `application`."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trio_site.settings")

application = get_asgi_application()
