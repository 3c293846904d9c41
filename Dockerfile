# Trio as a container image: `docker compose up` (see docker-compose.yml) or, standalone,
#
#   docker build -t trio .
#   docker run -p 127.0.0.1:8000:8000 -e DJANGO_SECRET_KEY=... -e TRIO_HTTPS=false \
#              -e TRIO_BACKEND_URL=http://host:4000 -v trio-data:/app/data --stop-timeout 200 trio
#
# --stop-timeout: on `docker stop`, gunicorn lets the completions in flight finish, which may take
# TRIO_DEADLINE plus the SQLite lock wait plus 10 s (190 s by default, see
# trio_site/gunicorn_conf.py); Docker's default of 10 s kills them unanswered and unstored.
#
# All configuration comes from the environment (trio_site/settings.py reads it). The image runs with
# TRIO_ENV=production: it refuses to start without a strong DJANGO_SECRET_KEY (the top of
# docker-compose.yml shows how to make one) rather than sign sessions with a guessable key, and
# redirects to HTTPS unless TRIO_HTTPS=false (plain HTTP on localhost, as above). Without
# DATABASE_URL it keeps a SQLite file in /app/data: mount a volume there to keep the history.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# A fixed numeric id: Kubernetes' runAsNonRoot can only verify a numeric USER.
RUN groupadd --system --gid 10001 trio \
 && useradd --system --uid 10001 --gid trio --home-dir /app --no-create-home --shell /usr/sbin/nologin trio

# Dependencies first, on their own layer: editing the code does not reinstall them. Only the
# runtime part of requirements.txt: the test tools have no place in a server image.
COPY requirements.txt docker/runtime_requirements.py ./
RUN python runtime_requirements.py requirements.txt > runtime-requirements.txt \
 && pip install -r runtime-requirements.txt \
 && rm runtime_requirements.py runtime-requirements.txt

# The code stays owned by root, so the server cannot rewrite it; only /app/data is writable.
# collectstatic runs before TRIO_ENV=production is set: it needs no secret and no database.
COPY . .
RUN install -d -o trio -g trio /app/data \
 && python manage.py collectstatic --noinput --verbosity 0

ENV TRIO_ENV=production \
    TRIO_PORT=8000 \
    DATABASE_URL=sqlite:////app/data/trio.sqlite3

USER 10001:10001
EXPOSE 8000

# Liveness only (/health): a slow model backend must not get the web container marked unhealthy.
# Readiness, which does check the database and the backend, is /health/ready.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/app/docker/healthcheck.py"]

ENTRYPOINT ["/app/docker/entrypoint.sh"]
