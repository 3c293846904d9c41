"""ASGI entry point: gunicorn's uvicorn worker and the tests serve this `application`."""
import gc
import os

from django.core.asgi import get_asgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trio_site.settings")

site_application = get_asgi_application()  # also runs django.setup()

from ensemble.metrics import gc_pauses_time  # noqa: E402  (needs the setup above)
from ensemble.serving.body_limit import BodySizeLimit  # noqa: E402
from ensemble.serving.lifespan import Lifespan  # noqa: E402
from ensemble.serving.routing import APIHandler, PathRouter  # noqa: E402

# The JSON API skips the browser middleware (see ensemble.serving.routing); BodySizeLimit refuses
# oversized bodies before Django spools them to disk; Lifespan closes the backend clients when
# the worker stops (Django has no lifespan support of its own).
application = Lifespan(BodySizeLimit(PathRouter(api=APIHandler(), site=site_application)))

# Move everything loaded so far (Django, DRF, every view module, about 100k objects) out of the
# garbage collector's reach. Under load the in-flight requests push the collector into a full
# collection every few seconds, and a full collection walks every tracked object: 45-85 ms with
# the event loop stopped, felt by every request in flight. Frozen, it walks only what requests
# allocated: 6-50 ms depending on the machine (bench/concurrency.py). The frozen objects live as
# long as the process anyway.
get_resolver().url_patterns  # import the view modules now rather than on the first request
gc_pauses_time()
gc.collect()
gc.freeze()
