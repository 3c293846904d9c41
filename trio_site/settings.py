"""Django settings for Trio.

Every environment variable the project reads is read here, through the small helpers in
`trio_site/env.py`, which fail loudly (ImproperlyConfigured) on a value they cannot understand instead
of guessing.
"""
from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from trio_site.env import (env_bool, env_choice, env_database, env_grace, env_header_value, env_http_url,
                           env_list, env_number, env_str, env_writable_dir)

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Django core -------------------------------------------------------------------------------

# "production" makes the insecure development defaults refuse to apply.
TRIO_ENV = env_choice("TRIO_ENV", "development", {"development", "production"})
DEBUG = env_bool("DJANGO_DEBUG", False)
if DEBUG and TRIO_ENV == "production":
    raise ImproperlyConfigured("DJANGO_DEBUG must be off when TRIO_ENV=production: debug pages show settings.")


def secret_key_is_strong(key: str) -> bool:
    """Return whether Django's deploy check accepts `key`: its rule for security.W009, restated.

    (Django keeps the rule in a private function, django.core.checks.security.base._check_secret_key.)
    """
    return len(key) >= 50 and len(set(key)) >= 5 and not key.startswith("django-insecure-")


SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if TRIO_ENV == "production":
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when TRIO_ENV=production.")
    # Good enough for a laptop; never used when TRIO_ENV=production.
    SECRET_KEY = "django-insecure-trio-local-development-key-do-not-deploy"
elif TRIO_ENV == "production" and not secret_key_is_strong(SECRET_KEY):
    # Django only warns (security.W009, and only under `check --deploy`), then signs sessions,
    # password-reset links and CSRF tokens with a key short enough to guess.
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is too weak for TRIO_ENV=production: it needs at least 50 characters, 5 of them "
        "different, and no 'django-insecure-' prefix (Django's security.W009). Generate one with "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
if not ALLOWED_HOSTS:  # e.g. " , ": Django would answer every request, /health too, with a 400
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS names no host (use * to accept any).")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "corsheaders",
    "csp",  # for its system checks, which refuse the CSP_* settings of django-csp < 4 it would ignore
    "axes",  # admin login lockouts (AXES_* below): its tables, admin pages and axes_reset commands
    "ensemble",
]

MIDDLEWARE = [
    # Native async, outermost so every response (errors included) carries X-Request-ID.
    "ensemble.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves collected static files under ASGI (WhiteNoise is sync-only); native async.
    "servestatic.middleware.ServeStaticMiddleware",
    # Below ServeStatic, so static files are answered without building a policy they do not need.
    "csp.middleware.CSPMiddleware",
    # Native async (not MiddlewareMixin), so it costs no hop to the sync thread; above the error
    # middleware so that JSON errors carry CORS headers too and browsers can read them.
    "corsheaders.middleware.CorsMiddleware",
    "ensemble.serving.middleware.OpenAIErrorMiddleware",
    # Before sessions: a NUL in a session cookie (or a list filter) is a 500 on PostgreSQL.
    "ensemble.serving.middleware.RefuseNulCharacters",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as axes asks: turns a login refused for a lockout into the 429 page. Native async. Not
    # in API_MIDDLEWARE: API keys never go through Django's authenticate(), so nothing locks there.
    "axes.middleware.AxesMiddleware",
]

# The JSON API (/v1/, /health, /metrics) is served with this shorter stack: no cookies, sessions
# or forms there, and no entry hops to a worker thread (see ensemble/serving/routing.py). Security
# and Common are Django's, with their hooks run inline (ensemble.serving.middleware._InlineHooks). No
# CSPMiddleware: browsers render no JSON, and it is sync-style, a thread hop in and out per request.
API_MIDDLEWARE = [
    "ensemble.logs.RequestIdMiddleware",
    "ensemble.serving.middleware.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "ensemble.serving.middleware.OpenAIErrorMiddleware",
    "ensemble.serving.middleware.RefuseNulCharacters",
    "ensemble.serving.middleware.CommonMiddleware",
]

ROOT_URLCONF = "trio_site.urls"
ASGI_APPLICATION = "trio_site.asgi.application"
WSGI_APPLICATION = "trio_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------------------------
# CONN_MAX_AGE must stay 0 under ASGI: each sync_to_async call may run on another thread, and
# persistent connections would pile up one per thread.
DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{BASE_DIR / 'trio.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue on `timeout`
        # instead of failing with "database is locked" when a read lock cannot be upgraded.
        "transaction_mode": "IMMEDIATE",
        "timeout": env_number("TRIO_SQLITE_TIMEOUT", 60.0, minimum=1),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    _db["TEST"] = {"NAME": str(BASE_DIR / "trio-test.sqlite3")}
elif _db["ENGINE"] == "django.db.backends.postgresql":
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env_number("TRIO_DB_POOL_SIZE", 8, cast=int, minimum=1),
        # How long a query waits for a pooled connection. While PostgreSQL is down no connection
        # comes, so every request waited psycopg_pool's default 30 s before its 503, and every
        # answer as long for its write; a busy pool hands one over in milliseconds.
        "timeout": env_number("TRIO_DB_POOL_TIMEOUT", 5.0, minimum=0.1),
    }
    # The pool checks a connection before handing it out (Django passes psycopg_pool's `check`).
    # A pooled connection dies with a PostgreSQL restart or failover, or an idle timeout on the
    # way; unchecked, each dead one failed the next request it was handed (a 503).
    _db["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth, i18n, static ------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"
# Where a login lands without a safe `next` (Django's default, /accounts/profile/, is no page here).
LOGIN_REDIRECT_URL = "pages:vote-list"
# Axes first: it refuses a locked-out login before any password is checked. The standalone backend
# logs nobody in; ModelBackend still does.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# A security review guessed admin passwords freely. After TRIO_LOGIN_FAILURE_LIMIT wrong passwords
# for one username from one address, that pair is refused (429, admin/lockout.html) until
# TRIO_LOGIN_COOLOFF_MINUTES pass without an attempt (each refused try starts the wait again,
# axes's AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT). The pair, not the username alone: whoever
# guesses an admin's name must not lock them out from everywhere. Attempts live in the database
# (axes's default handler), which every worker shares; a login resets its pair's count.
AXES_FAILURE_LIMIT = env_number("TRIO_LOGIN_FAILURE_LIMIT", 5, cast=int, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_number("TRIO_LOGIN_COOLOFF_MINUTES", 15.0, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/lockout.html"
# The address is REMOTE_ADDR (axes's choice without django-ipware). The uvicorn workers already
# put X-Forwarded-For's client there, for connections from FORWARDED_ALLOW_IPS only (gunicorn's
# setting, loopback by default); reading the header again here would let any client pick an
# address, and with it a fresh count.
# Log lines name the address of a lockout but not the username, which may be a mistyped
# password (the admin's Access attempts show it). Passwords are always masked.
AXES_SENSITIVE_PARAMETERS = ["username"]
# Not verbose: no "AXES: BEGIN" line on every start and every manage.py command's stderr (a command
# whose output is piped must write nothing else), and no user agent in the lockout lines.
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Outside production, serve straight from the apps' static folders (no collectstatic needed);
# production serves the collected files, which collectstatic also writes gzipped for clients that
# accept it. Not the manifest (cache-busting) storage: the image collects before TRIO_ENV is set,
# and every page would fail on a checkout where nobody ran collectstatic.
SERVESTATIC_USE_FINDERS = TRIO_ENV != "production"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "servestatic.storage.CompressedStaticFilesStorage"},
}

# A completion body carries whole conversations; Django's 2.5 MB default is too small for long
# chats, unbounded is an easy denial of service.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_number("TRIO_MAX_BODY_BYTES", 10 * 1024 * 1024, cast=int, minimum=1024)
# Every backend call carries its own serialized copy of the conversation, so a request holds about
# body size x backend calls in memory at once: a 9 MB body to a 52-call DSL ensemble took a worker's
# peak from 97 to 475 MiB. The budget bounds that product. 256 MiB lets every named ensemble (at most
# 9 members: 9 generations + 9 ballots) take a full 10 MiB body (180 MiB), the default trio uses 60;
# only request-defined ensembles with more calls need a shorter conversation.
TRIO_MAX_FANOUT_BYTES = env_number("TRIO_MAX_FANOUT_BYTES", 256 * 1024 * 1024, cast=int, minimum=1024)
# A backend reply (one member's answer, one ballot) longer than this is a failed call, `too_large`:
# reading stops there. Unbounded, three members answering 20 MB each took a worker past 1 GB and
# stored 63 MB per request. 1 MiB holds the longest real answers (a whole output window, as JSON).
TRIO_MAX_ANSWER_BYTES = env_number("TRIO_MAX_ANSWER_BYTES", 1024 * 1024, cast=int, minimum=1024)

# --- HTTPS, cookies, CORS, API keys ------------------------------------------------------------
# Clients reach Trio over HTTPS, directly or through a TLS-terminating proxy: on by default in
# production. Turn it off only for plain HTTP on a trusted network (docker compose on localhost).
TRIO_HTTPS = env_bool("TRIO_HTTPS", TRIO_ENV == "production")
# Behind a proxy that terminates TLS, Django sees plain HTTP and would redirect forever: trust the
# proxy's X-Forwarded-Proto. Only when the proxy overwrites that header, or any client can claim HTTPS.
if env_bool("TRIO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Off when the proxy already redirects HTTP to HTTPS.
SECURE_SSL_REDIRECT = env_bool("TRIO_SSL_REDIRECT", TRIO_HTTPS)
# Container health probes (/health, /health/ready) and Prometheus scrape workers over plain HTTP
# from inside the deployment: answer them rather than redirect to an https:// nobody serves there.
SECURE_REDIRECT_EXEMPT = [r"^health(/|$)", r"^metrics$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = TRIO_HTTPS
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
# HSTS is only sent on HTTPS responses. A year, as Django's deploy check asks.
SECURE_HSTS_SECONDS = env_number("TRIO_HSTS_SECONDS", 365 * 24 * 3600 if TRIO_HTTPS else 0, cast=int, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("TRIO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("TRIO_HSTS_PRELOAD", False)
if not SECURE_HSTS_PRELOAD:
    # Preloading commits the whole domain to HTTPS in browsers' built-in lists for months, so it is
    # the domain owner's opt-in; Django's deploy check (W021) merely suggests it.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]

# Browser apps on these origins may call /v1/ (with an API key like anyone else). None by default.
CORS_ALLOWED_ORIGINS = env_list("TRIO_CORS_ALLOWED_ORIGINS", "")
CORS_URLS_REGEX = r"^/v1/.*$"
CORS_EXPOSE_HEADERS = ["X-Trio-Details"]

# Content-Security-Policy on the pages and the admin, which show stored prompts and answers: should
# a model's markup ever escape the templates' escaping, the browser still runs no script and loads
# nothing that the page did not load from here. No page has an inline <script> or <style> or a
# style="" attribute (the charts colour with SVG attributes, which CSP does not govern). A page that
# needs an inline block adds csp.constants.NONCE to its directive and gives the block
# nonce="{{ request.csp_nonce }}", rather than allowing 'unsafe-inline'.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # data: for the pages' empty favicon (<link rel="icon" href="data:,">), which spares the
        # browser a request for /favicon.ico; an image cannot run script.
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        # The admin's related-object pop-ups are windows, not frames: nothing frames these pages.
        "frame-ancestors": [NONE],
    },
}

# Plaintext keys accepted besides the ApiKey rows (for deployments configured only by environment).
# Either kind makes /v1/ require `Authorization: Bearer <key>`; with neither, the API is open.
TRIO_API_KEYS = env_list("TRIO_API_KEYS", "")
if any(len(key) < 20 for key in TRIO_API_KEYS):
    raise ImproperlyConfigured("TRIO_API_KEYS: every key must be at least 20 characters (use create_api_key).")

# --- REST framework ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["ensemble.api.auth.ApiKeyAuthentication"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "ensemble.api.errors.openai_exception_handler",
}

# The schema served at /v1/openapi.json is public: it describes the API, it holds no secret.
SPECTACULAR_SETTINGS = {
    "TITLE": "Trio",
    "DESCRIPTION": "An OpenAI-compatible chat API answered by an ensemble of models that vote.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SCHEMA_PATH_PREFIX": r"/v1",
    "ENUM_NAME_OVERRIDES": {
        "ResponseObjectEnum": "ensemble.api.responses_schema.RESPONSE_OBJECT",
        "ResponseStatusEnum": "ensemble.api.responses_schema.RESPONSE_STATUSES",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "ensemble.api.schema.add_health_path",
    ],
}

# Also read by trio_site.gunicorn_conf: gunicorn's and uvicorn's own lines follow the same format.
TRIO_LOG_JSON = env_bool("TRIO_LOG_JSON", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "ensemble.logs.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "ensemble.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if TRIO_LOG_JSON else "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env_choice(
        "TRIO_LOG_LEVEL", "info", {"debug", "info", "warning", "error", "critical"}).upper()},
    # httpx (used by the openai SDK in tests and tools) logs every call at INFO: noise.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# --- Trio --------------------------------------------------------------------------------------
TRIO_MODELS = env_list("TRIO_MODELS", "default,llama3.2-3b,mistral")
if not TRIO_MODELS:
    raise ImproperlyConfigured("TRIO_MODELS must name at least one backend model.")
TRIO_BACKEND_URL = env_http_url("TRIO_BACKEND_URL", "http://localhost:4000")
TRIO_BACKEND_API_KEY = env_header_value("TRIO_BACKEND_API_KEY")
TRIO_TIMEOUT = env_number("TRIO_TIMEOUT", 60.0, minimum=0.001)
TRIO_SELF_VOTE = env_choice("TRIO_SELF_VOTE", "include", {"include", "exclude"})
# An answer whose consensus score (the share of the other voters accepting it) is below this is `low`.
TRIO_LOW_CONSENSUS = env_number("TRIO_LOW_CONSENSUS", 0.5, minimum=0.0, maximum=1.0)
# Overall budget of one request (generation + voting), on top of TRIO_TIMEOUT per call.
TRIO_DEADLINE = env_number("TRIO_DEADLINE", 2 * TRIO_TIMEOUT, minimum=0.001)
# Stragglers: once TRIO_QUORUM members have answered (0 = all but one), wait TRIO_STRAGGLER_GRACE
# more and go on without the rest. "0.5x" means half the quorum's median latency; "2" means 2 s.
TRIO_QUORUM = env_number("TRIO_QUORUM", 0, cast=int, minimum=0)
TRIO_STRAGGLER_GRACE = env_grace("TRIO_STRAGGLER_GRACE", "0.5x")
# Chat completions that may be starting at once per worker (see ensemble.completion.admission); 0 = no limit.
TRIO_ADMISSION_SLOTS = env_number("TRIO_ADMISSION_SLOTS", 3, cast=int, minimum=0)
# Pause before the single retry of a call refused with 429/503 or a connection error.
TRIO_RETRY_BACKOFF = env_number("TRIO_RETRY_BACKOFF", 0.2, minimum=0)
# gunicorn's worker processes (read by gunicorn itself; checked here, where `make run` and the
# container read every variable before gunicorn starts): 0 would start a master without workers,
# which accepts connections and never answers them.
WEB_CONCURRENCY = env_number("WEB_CONCURRENCY", 1, cast=int, minimum=1)
# prometheus_client's multiprocess mode (needed with WEB_CONCURRENCY > 1): an empty writable dir.
PROMETHEUS_MULTIPROC_DIR = env_writable_dir("PROMETHEUS_MULTIPROC_DIR")
# When set, /metrics requires `Authorization: Bearer <token>`; otherwise protect it at the network.
TRIO_METRICS_TOKEN = env_str("TRIO_METRICS_TOKEN")
# 0 keeps metadata and votes but no prompt, answer or ballot text (for deployments that must
# not keep conversations).
TRIO_STORE_CONTENT = env_bool("TRIO_STORE_CONTENT", True)
TRIO_BALLOT_MAX_TOKENS = env_number("TRIO_BALLOT_MAX_TOKENS", 200, cast=int, minimum=16)
# What a ballot (and the synthesizer's prompt) quotes of the candidates, in characters: at most this
# much of each, and at most the second of all of them together (ensemble.voting.QuoteLimits), so that
# a request's ballots stay bounded however long the answers; a cut is marked inside its fence.
TRIO_BALLOT_QUOTE_CHARS = env_number("TRIO_BALLOT_QUOTE_CHARS", 32_768, cast=int, minimum=256)
TRIO_BALLOT_PROMPT_QUOTE_CHARS = env_number("TRIO_BALLOT_PROMPT_QUOTE_CHARS", 131_072, cast=int, minimum=256)
# How ballots are asked (ensemble.voting.formats): `auto` tries json_schema, then json_object, then
# text, remembering per model what its server accepts.
TRIO_BALLOT_FORMAT = env_choice("TRIO_BALLOT_FORMAT", "auto", {"auto", "json_schema", "json_object", "text"})
# Upper bound on simultaneous backend connections per worker (idle ones are kept for reuse).
TRIO_BACKEND_MAX_CONNECTIONS = env_number("TRIO_BACKEND_MAX_CONNECTIONS", 512, cast=int, minimum=1)
# First start creates this superuser if no superuser exists (password generated and printed if unset).
TRIO_ADMIN_USERNAME = env_str("TRIO_ADMIN_USERNAME", "admin")
TRIO_ADMIN_PASSWORD = env_str("TRIO_ADMIN_PASSWORD")
# Streaming (stream: true): seconds between `: keep-alive` comments while the ensemble works, so
# proxies and clients do not drop the silent connection; also how long a request may take to fail
# with a proper HTTP status before the event stream starts.
TRIO_STREAM_KEEPALIVE = env_number("TRIO_STREAM_KEEPALIVE", 10.0, minimum=0.01)
