"""Settings of the skeleton app: Django and DRF only, no database, no middleware."""
import os

SECRET_KEY = "bench-skeleton-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "bench.skeleton.urls"
# ensemble: its admission gate imports its models (never queried here: there is no database).
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "rest_framework", "ensemble"]
MIDDLEWARE: list[str] = []
DATABASES: dict = {}
USE_TZ = True
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
}
# Trio's admission gate (ensemble.completion.admission), with Trio's default: requests start in arrival order.
TRIO_ADMISSION_SLOTS = 3
# What Trio's ensemble.backend.client_for_running_loop reads, with Trio's defaults; bench/stack_floor.py
# sets the backend and the models, as bench/harness.py does for Trio.
TRIO_BACKEND_URL = os.environ["TRIO_BACKEND_URL"]
TRIO_BACKEND_API_KEY = None
TRIO_TIMEOUT = 60.0
TRIO_BACKEND_MAX_CONNECTIONS = 512
MODELS = os.environ["TRIO_MODELS"].split(",")
