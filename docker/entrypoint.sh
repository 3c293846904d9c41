#!/bin/sh
# Container entry point.
#
# With no arguments: bring the database schema up to date, create the first admin user if there is
# none, then replace this shell with gunicorn (exec), so that `docker stop`'s SIGTERM reaches
# gunicorn directly and in-flight requests get its graceful shutdown.
#
# With arguments, run them instead, e.g. a one-off history tool:
#   docker compose run --rm trio python manage.py prune_votes --older-than 90d
set -eu

cd "$(dirname "$0")/.."

if [ "$#" -gt 0 ]; then
    exec "$@"
fi

python manage.py migrate --noinput
python manage.py ensure_admin
# Roll up closed days of vote history now rather than on the first leaderboard view.
python manage.py rollup_votes

exec gunicorn trio_site.asgi:application \
    --worker-class uvicorn_worker.UvicornWorker \
    --workers "${WEB_CONCURRENCY:-1}" \
    --bind "0.0.0.0:${TRIO_PORT:-8000}"
