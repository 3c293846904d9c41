"""Docker HEALTHCHECK: exit 0 when Trio's liveness endpoint answers 200, else 1.

Runs every 30 s inside the container (python:3.12-slim has no curl), so it uses only the standard
library and does not import Django. It reads TRIO_PORT (where the entrypoint binds gunicorn) and
DJANGO_ALLOWED_HOSTS: Django answers 400 to a Host header it does not allow, so the probe presents
itself as the first allowed host instead of "localhost", which a production deployment may not allow.
"""
import os
import sys
import urllib.request

TIMEOUT_SECONDS = 4  # below the HEALTHCHECK --timeout, so a hang is reported here, with a reason


def host_header(allowed_hosts: str) -> str:
    """Return a Host value that Django's ALLOWED_HOSTS (comma-separated, as in the env) accepts."""
    first = next((h.strip() for h in allowed_hosts.split(",") if h.strip()), "localhost")
    if first == "*":
        return "localhost"
    return first.lstrip(".")  # ".example.com" allows example.com itself


def main() -> int:
    """Return the exit status: 0 when GET /health answers 200."""
    port = os.environ.get("TRIO_PORT") or "8000"  # empty means the default, as in the entrypoint
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/health",
        headers={"Host": host_header(os.environ.get("DJANGO_ALLOWED_HOSTS", ""))},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:  # URLError, HTTPError (non-2xx) and timeouts are all OSErrors
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
