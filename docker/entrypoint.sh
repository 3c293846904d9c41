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
# Roll up the closed days of vote history: page views never do (README: the hourly cron line).
python manage.py rollup_votes

# Empty means the default; exported, as gunicorn reads it too and cannot start with an empty one.
export WEB_CONCURRENCY="${WEB_CONCURRENCY:-1}"
workers="$WEB_CONCURRENCY"
# With more than one worker, each listens on its own SO_REUSEPORT socket and the kernel spreads
# new connections evenly; on one shared socket, whichever worker woke first took most of a burst.
reuse_port=""
if [ "$workers" -gt 1 ]; then
    reuse_port="--reuse-port"
fi

# trio_site/gunicorn_conf.py: the graceful shutdown lasts as long as a completion may (TRIO_DEADLINE).
exec gunicorn trio_site.asgi:application -c python:trio_site.gunicorn_conf \
    --worker-class uvicorn_worker.UvicornWorker \
    --workers "$workers" $reuse_port \
    --bind "0.0.0.0:${TRIO_PORT:-8000}"
