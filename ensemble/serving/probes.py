"""The probes: liveness (/health), readiness (/health/ready) and the Prometheus scrape (/metrics)."""
import asyncio
import hmac

from asgiref.sync import sync_to_async
from django.db import Error as DatabaseError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from ..backend import BackendClient, BackendError
from ..metrics import CONTENT_TYPE_LATEST, metrics_exposition

# Readiness answers within this many seconds even when a dependency hangs: a probe that hangs
# itself is reported by the orchestrator as a bare timeout, which names nothing.
READY_TIMEOUT = 3.0


@require_safe  # GET and HEAD; anything else is 405 with an Allow header
async def metrics(request):
    """Prometheus scrape endpoint; bearer-token protected when TRIO_METRICS_TOKEN is set."""
    token = settings.TRIO_METRICS_TOKEN
    if token and not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return HttpResponse("unauthorized\n", status=401, content_type="text/plain")
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)


@require_safe
async def health(request):
    """Liveness: the process answers. Depends on nothing else, on purpose."""
    return JsonResponse({"status": "ok"})


@require_safe
async def health_ready(request):
    """Readiness: 200 when the database and the model backend both answer, else 503 naming what failed."""
    database, backend = await asyncio.gather(_database_error(), _backend_error())
    errors = {name: error for name, error in (("database", database), ("backend", backend)) if error}
    body = {
        "status": "unavailable" if errors else "ok",
        "checks": {name: "error" if name in errors else "ok" for name in ("database", "backend")},
    }
    if errors:
        body["errors"] = errors
    return JsonResponse(body, status=503 if errors else 200)


async def _database_error() -> str | None:
    """Return why the database cannot serve Trio (no answer, or tables missing), or None when it can."""
    try:
        return await asyncio.wait_for(sync_to_async(_schema_error)(), READY_TIMEOUT)
    except TimeoutError:
        return f"no answer within {READY_TIMEOUT:g}s"
    except DatabaseError as exc:
        return f"{type(exc).__name__}: {exc}"


# Once every migration is applied, later probes only check that the database answers: a schema
# does not go back, and reading the migration files costs tens of milliseconds.
_schema_complete = False


def _schema_error() -> str | None:
    global _schema_complete
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    if not _schema_complete:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            return f"{len(pending)} migration(s) not applied: run `python manage.py migrate`"
        _schema_complete = True
    return None


async def _backend_error() -> str | None:
    """Return why the model backend cannot list its models, or None when it can."""
    # A client of its own, closed right away: probes are rare, and a probe run on a short-lived
    # event loop (a test client, a management shell) must not leave a shared client behind.
    client = BackendClient(settings.TRIO_BACKEND_URL, api_key=settings.TRIO_BACKEND_API_KEY, timeout=READY_TIMEOUT)
    try:
        await client.list_models()
    except BackendError as exc:
        return str(exc)
    finally:
        await client.aclose()
    return None
