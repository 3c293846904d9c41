"""ASGI entry point: gunicorn's uvicorn worker and the tests serve this `application`."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trio_site.settings")

site_application = get_asgi_application()  # also runs django.setup()

from ensemble.asgi_routing import APIHandler, PathRouter  # noqa: E402  (needs the setup above)
from ensemble.middleware import BodySizeLimit, Lifespan  # noqa: E402

# The JSON API skips the browser middleware (see ensemble.asgi_routing); BodySizeLimit refuses
# oversized bodies before Django spools them to disk; Lifespan closes the backend clients when
# the worker stops (Django has no lifespan support of its own).
application = Lifespan(BodySizeLimit(PathRouter(api=APIHandler(), site=site_application)))
