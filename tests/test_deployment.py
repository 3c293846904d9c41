"""The container wiring, checked without a Docker engine.

docker-compose.yml and deploy/litellm-config.yaml are parsed and cross-checked (the values a
deployment would get are computed the way compose interpolates them); the Dockerfile is read
instruction by instruction; docker/entrypoint.sh and docker/healthcheck.py are run for real against
a throwaway SQLite database; `docker compose config` runs only where compose is installed.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from ensemble.devtools.devserver import free_port
from tests.conftest import BACKEND_API_KEY

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
LITELLM_CONFIG = ROOT / "deploy" / "litellm-config.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
HEALTHCHECK = ROOT / "docker" / "healthcheck.py"
# As docker-compose.yml tells the operator to make one: production refuses a weak key.
SECRET_KEY = secrets.token_urlsafe(50)
# How long the entrypoint may take to migrate a fresh database and start gunicorn, and a one-off
# command to finish. A bound, not a wait: a healthy start takes a few seconds, but on a loaded
# 2-core machine (the CI run, other tests beside it) a start once took over 30 s.
START_LIMIT = 120

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
_VARIABLE_RE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str, environ: dict[str, str]) -> str:
    """Return `value` with compose-style ${...} references resolved from `environ`."""
    def resolve(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        current = environ.get(name)
        missing = current is None or (current == "" and op and op.startswith(":"))
        if op and op.endswith("?") and missing:
            raise LookupError(f"{name}: {arg}")
        if op and op.endswith("-") and missing:
            return arg
        return current or ""
    return _VARIABLE_RE.sub(resolve, value)


def variables_in(value: str) -> set[str]:
    """Return the names of the variables `value` refers to."""
    return {match["name"] for match in _VARIABLE_RE.finditer(value)}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def trio_env(services) -> dict[str, str]:
    """Return the trio service's environment as declared (before interpolation)."""
    return services["trio"]["environment"]


@pytest.fixture(scope="module")
def deployed_env(trio_env) -> dict[str, str]:
    """Return the trio service's environment as a fresh deployment gets it (only the secret set)."""
    return {key: interpolate(str(value), {"DJANGO_SECRET_KEY": SECRET_KEY}) for key, value in trio_env.items()}


@pytest.fixture(scope="module")
def litellm_config() -> dict:
    return yaml.safe_load(LITELLM_CONFIG.read_text())


# --- docker-compose.yml ------------------------------------------------------------------------

def test_trio_waits_for_a_healthy_postgres_and_starts_after_litellm(services):
    depends_on = services["trio"]["depends_on"]
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert "litellm" in depends_on


def test_postgres_has_a_readiness_healthcheck_and_keeps_its_data_in_a_named_volume(compose, services):
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volume, _, target = postgres["volumes"][0].partition(":")
    assert target.startswith("/var/lib/postgresql/data")
    assert volume in compose["volumes"]


def test_trio_uses_the_postgres_service_with_its_credentials(services, deployed_env):
    postgres_env = {k: interpolate(str(v), {}) for k, v in services["postgres"]["environment"].items()}
    url = urlsplit(deployed_env["DATABASE_URL"])
    assert url.scheme in ("postgres", "postgresql")
    assert (url.hostname, url.port or 5432) == ("postgres", 5432)
    assert url.username == postgres_env["POSTGRES_USER"]
    assert url.password == postgres_env["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres_env["POSTGRES_DB"]


def test_the_backend_key_and_litellms_master_key_come_from_one_variable(services, trio_env):
    litellm_env = services["litellm"]["environment"]
    assert trio_env["TRIO_BACKEND_API_KEY"] == litellm_env["LITELLM_MASTER_KEY"]
    assert variables_in(trio_env["TRIO_BACKEND_API_KEY"]) == {"LITELLM_MASTER_KEY"}
    # Overriding the one variable changes both sides.
    custom = {"LITELLM_MASTER_KEY": "sk-custom"}
    assert interpolate(trio_env["TRIO_BACKEND_API_KEY"], custom) == "sk-custom"
    assert interpolate(litellm_env["LITELLM_MASTER_KEY"], custom) == "sk-custom"


def test_trio_talks_to_the_litellm_service_on_the_port_litellm_listens_on(services, deployed_env):
    command = services["litellm"]["command"]
    listen_port = int(command[command.index("--port") + 1])
    url = urlsplit(deployed_env["TRIO_BACKEND_URL"])
    assert (url.hostname, url.port) == ("litellm", listen_port)


def test_litellm_serves_the_mounted_config_with_the_master_key(services, litellm_config):
    litellm = services["litellm"]
    assert litellm["image"].startswith("ghcr.io/berriai/litellm")
    command = litellm["command"]
    config_path = command[command.index("--config") + 1]
    mounts = {target.split(":")[0]: source for source, target in (v.split(":", 1) for v in litellm["volumes"])}
    assert Path(ROOT, mounts[config_path]).resolve() == LITELLM_CONFIG
    assert litellm_config["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"


def test_every_default_trio_model_is_in_the_litellm_config(deployed_env, litellm_config):
    served = {entry["model_name"] for entry in litellm_config["model_list"]}
    members = [name.strip() for name in deployed_env["TRIO_MODELS"].split(",")]
    assert members == ["default", "llama3.2-3b", "mistral"]
    assert set(members) <= served


def test_the_litellm_models_point_at_the_ollama_service(services, litellm_config):
    api_base = interpolate(services["litellm"]["environment"]["OLLAMA_API_BASE"], {})
    for entry in litellm_config["model_list"]:
        params = entry["litellm_params"]
        assert params["model"].startswith(("ollama/", "ollama_chat/"))
        assert params["api_base"] == "os.environ/OLLAMA_API_BASE"
    assert urlsplit(api_base)[1] == "ollama:11434"


def test_ollama_and_its_model_download_only_start_with_the_llm_profile(services):
    assert services["ollama"]["profiles"] == ["llm"]
    assert services["ollama"]["volumes"]
    assert services["ollama-pull"]["profiles"] == ["llm"]
    assert all("profiles" not in services[name] for name in ("trio", "postgres", "litellm"))


def test_plain_http_is_served_only_on_the_loopback_interface_by_default(services, deployed_env):
    """Production settings redirect to HTTPS; compose turns that off, so it must not publish widely."""
    published = interpolate(services["trio"]["ports"][0], {})
    assert published == "127.0.0.1:8000:8000"
    assert deployed_env["TRIO_HTTPS"] == "false"


def test_the_django_secret_key_has_no_default_in_production(trio_env):
    assert interpolate(trio_env["TRIO_ENV"], {}) == "production"
    with pytest.raises(LookupError, match="DJANGO_SECRET_KEY"):
        interpolate(trio_env["DJANGO_SECRET_KEY"], {})


def _compose_command() -> list[str] | None:
    """Return the installed compose command (v2 plugin first), or None."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run([*command, "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return command
    return None


@pytest.fixture(scope="module")
def compose_command():
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` (v2 plugin) nor `docker-compose` is installed here; "
                    "the structure tests above still ran")
    return command


def _compose_config(command: list[str], env_file: Path, environ: dict) -> subprocess.CompletedProcess:
    # An explicit, empty --env-file: a developer's own .env must not change the result.
    return subprocess.run(
        [*command, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "--profile", "llm", "config", "-q"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **environ},
    )


def test_docker_compose_accepts_the_file(compose_command, tmp_path):
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    result = _compose_config(compose_command, env_file, {"DJANGO_SECRET_KEY": SECRET_KEY})
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_start_without_a_secret_key(compose_command, tmp_path):
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    result = _compose_config(compose_command, env_file, {})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


# --- Dockerfile and .dockerignore --------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    """Return the Dockerfile's (INSTRUCTION, arguments) pairs, continuation lines joined."""
    logical, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def test_the_image_is_python_312_slim():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.12-slim")


def test_it_runs_as_a_non_root_user():
    users = [args for name, args in dockerfile_instructions() if name == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_dependencies_are_installed_before_the_code_is_copied():
    """So that a code change reuses the cached dependency layer."""
    steps = [f"{name} {args}" for name, args in dockerfile_instructions()]
    copy_requirements = steps.index("COPY requirements.txt docker/runtime_requirements.py ./")
    pip_install = next(i for i, step in enumerate(steps) if "pip install -r runtime-requirements.txt" in step)
    copy_code = steps.index("COPY . .")
    assert copy_requirements < pip_install < copy_code


TEST_TOOLS = {"pytest", "pytest-django", "playwright", "schemathesis", "langchain-openai", "openai", "pyyaml"}


def _distribution(requirement: str) -> str:
    """Return the normalized distribution name of a `name==version` line (PEP 503)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[=<>!~\[; ]", requirement.strip(), maxsplit=1)[0]).lower()


def _third_party_imports_of_the_served_code() -> set[str]:
    """Return the distributions whose modules the code in the image imports (tests and bench aside)."""
    import ast
    from importlib.metadata import packages_distributions

    files = [ROOT / "manage.py", *(ROOT / "ensemble").rglob("*.py"), *(ROOT / "trio_site").rglob("*.py"),
             *(ROOT / "docker").glob("*.py")]
    modules = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    modules -= set(sys.stdlib_module_names) | {"ensemble", "trio_site"}
    owners = packages_distributions()
    return {_distribution(owners[module][0]) for module in modules}


def test_the_image_installs_what_the_server_imports_and_no_test_tool(tmp_path):
    """Runs the Dockerfile's install step, with a stand-in for pip that keeps the file it was given."""
    install = next(args for name, args in dockerfile_instructions() if name == "RUN" and "runtime-requirements" in args)
    shutil.copy(ROOT / "requirements.txt", tmp_path)
    shutil.copy(ROOT / "docker" / "runtime_requirements.py", tmp_path)
    (tmp_path / "bin").mkdir()
    pip = tmp_path / "bin" / "pip"
    pip.write_text('#!/bin/sh\n[ "$1 $2" = "install -r" ] && cp "$3" installed.txt\n')
    pip.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}"}

    subprocess.run(["sh", "-c", install], cwd=tmp_path, env=env, check=True, timeout=30)

    installed = {_distribution(line) for line in (tmp_path / "installed.txt").read_text().splitlines()
                 if line.strip() and not line.startswith("#")}
    assert _third_party_imports_of_the_served_code() <= installed
    assert not installed & TEST_TOOLS
    assert {"gunicorn", "uvicorn-worker", "uvloop", "httptools", "psycopg"} <= installed  # run, not imported
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bin", "installed.txt", "requirements.txt"]


def test_the_runtime_part_of_requirements_needs_its_heading():
    result = subprocess.run([sys.executable, str(ROOT / "docker" / "runtime_requirements.py"), "/dev/stdin"],
                            input="Django==5.2.19\npytest==9.2.0\n", capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "no '# Tests' heading" in result.stderr


def test_static_files_are_collected_at_build_before_production_settings_apply():
    steps = dockerfile_instructions()
    collect = next(i for i, (name, args) in enumerate(steps) if name == "RUN" and "collectstatic --noinput" in args)
    production = next(i for i, (name, args) in enumerate(steps) if name == "ENV" and "TRIO_ENV=production" in args)
    assert collect < production


def test_the_healthcheck_probes_liveness_with_the_healthcheck_script():
    healthchecks = [args for name, args in dockerfile_instructions() if name == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "docker/healthcheck.py" in healthchecks[0]
    assert re.search(r'http://127\.0\.0\.1:\{port\}/health"', HEALTHCHECK.read_text())


def test_the_entrypoint_serves_the_asgi_app_with_uvicorn_workers():
    entrypoints = [args for name, args in dockerfile_instructions() if name == "ENTRYPOINT"]
    assert entrypoints == ['["/app/docker/entrypoint.sh"]']
    script = ENTRYPOINT.read_text()
    assert os.access(ENTRYPOINT, os.X_OK), "docker/entrypoint.sh must be executable (git mode 100755)"
    assert "exec gunicorn trio_site.asgi:application" in script
    assert "--worker-class uvicorn_worker.UvicornWorker" in script
    assert script.index("migrate --noinput") < script.index("ensure_admin") < script.index("exec gunicorn")


def test_the_build_context_leaves_out_secrets_and_local_state():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", ".venv", ".git", "*.sqlite3", "staticfiles"} <= ignored
    assert not ignored & {"requirements.txt", "manage.py", "ensemble", "trio_site", "templates", "docker"}


# --- the scripts the image runs, run here --------------------------------------------------------

def run_healthcheck(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, text=True, timeout=30)


def container_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Return an environment like the image's: production settings, nothing inherited from tests."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{venv_bin}:{os.environ['PATH']}", "HOME": str(tmp_path), "TRIO_ENV": "production",
        "DJANGO_SECRET_KEY": SECRET_KEY, "DATABASE_URL": f"sqlite:///{tmp_path / 'trio.sqlite3'}",
        "TRIO_PORT": str(free_port()), "WEB_CONCURRENCY": "1", "TRIO_ADMIN_PASSWORD": "correct-horse",
        **extra,
    }


@pytest.mark.parametrize("allowed, expected", [
    ("", "localhost"),
    ("trio.example.com,localhost", "trio.example.com"),
    (" *", "localhost"),
    (".example.com", "example.com"),
])
def test_the_healthcheck_presents_itself_as_an_allowed_host(allowed, expected):
    spec = importlib.util.spec_from_file_location("docker_healthcheck", HEALTHCHECK)
    healthcheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(healthcheck)
    assert healthcheck.host_header(allowed) == expected


def test_the_healthcheck_fails_when_nothing_listens(tmp_path):
    result = run_healthcheck(container_env(tmp_path))
    assert result.returncode == 1
    assert "unhealthy" in result.stderr


@contextmanager
def entrypoint_serving(env: dict[str, str]):
    """Run the entrypoint until it answers its healthcheck; yield it, then SIGTERM it and collect its output."""
    server = subprocess.Popen([str(ENTRYPOINT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + START_LIMIT
        while run_healthcheck(env).returncode != 0:
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, f"gunicorn did not answer /health within {START_LIMIT} s"
            time.sleep(0.3)
        yield server
    finally:
        server.send_signal(signal.SIGTERM)
        server.output, _ = server.communicate(timeout=START_LIMIT)


def listening_sockets(port: int) -> int:
    """Return how many IPv4 TCP sockets listen on `port` (Linux's /proc/net/tcp; state 0A is LISTEN)."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return sum(1 for row in rows if int(row[1].split(":")[1], 16) == port and row[3] == "0A")


def test_the_entrypoint_migrates_creates_the_admin_and_serves_until_stopped(tmp_path):
    env = container_env(tmp_path, DJANGO_ALLOWED_HOSTS="trio.example.com")
    with entrypoint_serving(env) as server:
        pass
    output = server.output
    # exec: gunicorn itself got the SIGTERM and shut down cleanly.
    assert server.returncode == 0, output
    assert "Created admin user 'admin'" in output
    with sqlite3.connect(tmp_path / "trio.sqlite3") as db:
        assert db.execute("SELECT username FROM auth_user WHERE is_superuser").fetchall() == [("admin",)]
        assert db.execute("SELECT COUNT(*) FROM django_migrations WHERE app = 'ensemble'").fetchone()[0] >= 1


@pytest.mark.parametrize("workers", [1, 3])
def test_each_worker_listens_on_its_own_socket_when_there_are_several(tmp_path, workers):
    """Several workers on one shared socket: whichever wakes first takes most of a burst of connections."""
    env = container_env(tmp_path, WEB_CONCURRENCY=str(workers))
    with entrypoint_serving(env) as server:
        deadline = time.monotonic() + START_LIMIT
        while listening_sockets(int(env["TRIO_PORT"])) < workers and time.monotonic() < deadline:
            time.sleep(0.3)  # healthy once one worker listens; the others may still be starting
        assert listening_sockets(int(env["TRIO_PORT"])) == workers
    assert server.returncode == 0, server.output  # every worker shut down cleanly on SIGTERM


def test_the_entrypoint_runs_a_one_off_command_instead_when_given_one(tmp_path):
    result = subprocess.run([str(ENTRYPOINT), "python", "-c", "import os; print(os.getcwd())"],
                            env=container_env(tmp_path), capture_output=True, text=True, timeout=START_LIMIT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(ROOT)
    assert not (tmp_path / "trio.sqlite3").exists()  # no migrations for one-off commands


def test_collectstatic_succeeds_as_the_image_build_runs_it(tmp_path):
    """No DATABASE_URL, no secret, no TRIO_ENV: the build has none of them."""
    script = (
        "import sys, django; from django.conf import settings; django.setup(); "
        "settings.STATIC_ROOT = sys.argv[1]; "
        "from django.core.management import call_command; call_command('collectstatic', '--noinput', verbosity=0)"
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DJANGO_SETTINGS_MODULE": "trio_site.settings"}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "static")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "static" / "admin" / "css" / "base.css").exists()


def test_loading_the_asgi_app_puts_what_it_loaded_out_of_the_garbage_collectors_reach(tmp_path):
    """Otherwise every full collection under load walks Django's objects too (see trio_site/asgi.py)."""
    script = "import gc, trio_site.asgi; print(gc.get_freeze_count(), len(gc.get_objects()))"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DJANGO_SETTINGS_MODULE": "trio_site.settings"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    frozen, still_tracked = map(int, result.stdout.split())
    assert frozen > 50_000  # Django, DRF and the view modules
    assert still_tracked < 1_000


@pytest.mark.parametrize("workers, reuse_port", [("1", False), ("2", True)])
def test_make_run_gives_each_worker_its_own_socket_only_when_there_are_several(workers, reuse_port):
    dry_run = subprocess.run(["make", "-n", "run", f"WEB_CONCURRENCY={workers}"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    assert ("--reuse-port" in dry_run) is reuse_port


# --- the server's lifecycle: stopping, logs, gunicorn's settings ------------------------------------

def gunicorn_config(launcher: list[str], env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Return the settings gunicorn resolves when `launcher` starts it (gunicorn --print-config).

    The real gunicorn runs, from a shim first on PATH (and as make's virtualenv) that only adds
    --print-config, so the launcher's own command line and environment are what is read.
    """
    shims = tmp_path / "bin"
    shims.mkdir(exist_ok=True)
    venv = Path(sys.executable).parent
    (shims / "gunicorn").write_text(f'#!/bin/sh\nexec "{venv / "gunicorn"}" "$@" --print-config\n')
    (shims / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    for shim in shims.iterdir():
        shim.chmod(0o755)
    env = {**env, "PATH": f"{shims}:{env['PATH']}"}
    result = subprocess.run(launcher, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    pairs = (line.split(" = ", 1) for line in result.stdout.splitlines() if " = " in line)
    return {name.strip(): value.strip() for name, value in pairs}


def make_run(tmp_path: Path) -> list[str]:
    """Return the command for `make run` itself, its virtualenv being the shims of gunicorn_config."""
    stamp = tmp_path / "requirements-installed"
    stamp.touch()  # newer than requirements.txt: no virtualenv is made
    return ["make", "--no-print-directory", "run", f"BIN={tmp_path / 'bin'}", f"STAMP={stamp}"]


@pytest.mark.parametrize("launcher", ["make run", "entrypoint"])
def test_stopping_waits_for_a_completion_as_long_as_one_may_take(tmp_path, launcher):
    """On SIGTERM, gunicorn kills what is still running after its graceful timeout (30 s by default):
    that completion gets no answer and leaves no row. It must outlast the deadline and the write."""
    env = container_env(tmp_path, TRIO_TIMEOUT="45", TRIO_SQLITE_TIMEOUT="20")  # deadline: 2 x 45 s
    command = make_run(tmp_path) if launcher == "make run" else [str(ENTRYPOINT)]
    config = gunicorn_config(command, env, tmp_path)
    assert int(config["graceful_timeout"]) >= 90 + 20


def test_docker_compose_waits_for_the_graceful_shutdown_before_killing_trio(services, deployed_env, tmp_path):
    env = {**container_env(tmp_path), **deployed_env}
    # gunicorn as the entrypoint starts it, without the migrations before (no PostgreSQL here)
    command = ["gunicorn", "trio_site.asgi:application", "-c", "python:trio_site.gunicorn_conf"]
    assert " ".join(command) in ENTRYPOINT.read_text()
    graceful = int(gunicorn_config(command, env, tmp_path)["graceful_timeout"])
    assert int(services["trio"]["stop_grace_period"].removesuffix("s")) > graceful


def test_with_json_logs_gunicorns_and_uvicorns_lines_are_json_too(tmp_path):
    """A worker killed or timed out is reported by gunicorn itself: a JSON log pipeline must read it."""
    with entrypoint_serving(container_env(tmp_path, TRIO_LOG_JSON="1")) as server:
        pass
    assert server.returncode == 0, server.output
    records = [json.loads(line) for line in server.output.splitlines() if line.startswith("{")]
    loggers = {record["logger"] for record in records}
    assert {"gunicorn.error", "uvicorn.error"} <= loggers
    assert any(record["message"] == "Shutting down: Master" for record in records)
    assert not [line for line in server.output.splitlines() if line.startswith("[")]  # gunicorn's plain format
    assert len(records) == len({json.dumps(record) for record in records}), "a line was written twice"


@pytest.mark.parametrize("workers", ["0", "-1", "two"])
def test_a_worker_count_gunicorn_cannot_serve_with_stops_the_start(tmp_path, workers):
    """With 0 workers gunicorn would listen, accept connections and never answer them."""
    result = subprocess.run([str(ENTRYPOINT)], env=container_env(tmp_path, WEB_CONCURRENCY=workers),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"WEB_CONCURRENCY={workers!r}" in result.stderr


def test_an_empty_worker_count_means_one_worker(tmp_path):
    """As for every variable; gunicorn itself cannot start when WEB_CONCURRENCY is empty."""
    env = container_env(tmp_path, WEB_CONCURRENCY="")
    assert gunicorn_config(make_run(tmp_path), env, tmp_path)["workers"] == "1"
    with entrypoint_serving(env) as server:
        assert listening_sockets(int(env["TRIO_PORT"])) == 1
    assert server.returncode == 0, server.output


def test_a_second_server_on_the_same_port_is_refused_also_with_a_socket_per_worker(tmp_path):
    """Otherwise it starts quietly and takes half of the connections, to its own database."""
    env = container_env(tmp_path, WEB_CONCURRENCY="2")
    port = int(env["TRIO_PORT"])
    with socket.socket() as other:  # another server's worker, as gunicorn binds them with --reuse-port
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("0.0.0.0", port))
        other.listen()
        result = subprocess.run([str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=START_LIMIT)
    assert result.returncode != 0
    assert f"Cannot serve on 0.0.0.0:{port}, is another server listening there?" in result.stderr


@pytest.mark.parametrize("database_back", [True, False])
def test_a_write_still_being_retried_when_the_server_stops_is_stored_or_reported_lost(
    tmp_path, backend, database_back
):
    """The retries live in the worker: at its shutdown they get a last attempt, and a failure says what is lost."""
    env = container_env(tmp_path, TRIO_HTTPS="false", TRIO_BACKEND_URL=backend.url,
                        TRIO_BACKEND_API_KEY=BACKEND_API_KEY, TRIO_MODELS="alpha,beta")
    database = sqlite3.connect(tmp_path / "trio.sqlite3", isolation_level=None)
    with entrypoint_serving(env) as server:
        database.execute("ALTER TABLE ensemble_completionrequest RENAME TO away")  # every write fails at once
        response = httpx.post(f"http://127.0.0.1:{env['TRIO_PORT']}/v1/chat/completions", timeout=30,
                              json={"model": "trio", "messages": [{"role": "user", "content": "Hi"}]})
        assert response.status_code == 200
        if database_back:
            time.sleep(4)  # retries after 0.5, 1 and 2 s fail; the next one is 5 s away
            database.execute("ALTER TABLE away RENAME TO ensemble_completionrequest")
    completion_id = response.json()["id"]
    assert server.returncode == 0, server.output
    if not database_back:
        database.execute("ALTER TABLE away RENAME TO ensemble_completionrequest")
    stored = database.execute("SELECT COUNT(*) FROM ensemble_completionrequest WHERE id = ?",
                              [completion_id.removeprefix("trio-")]).fetchone()[0]
    assert stored == database_back
    if not database_back:
        assert re.search(rf"gave up storing {completion_id}; its outcome is lost: CompletionOutcome\(", server.output)


def test_the_write_of_a_stream_whose_client_hung_up_is_not_dropped_silently_at_shutdown(tmp_path, backend):
    """A stream whose client hung up waits for no write: it may still be under way when the worker stops."""
    env = container_env(tmp_path, TRIO_HTTPS="false", TRIO_BACKEND_URL=backend.url, TRIO_SQLITE_TIMEOUT="2",
                        TRIO_BACKEND_API_KEY=BACKEND_API_KEY, TRIO_MODELS="alpha@latency=1,beta@latency=1")
    database = sqlite3.connect(tmp_path / "trio.sqlite3", isolation_level=None)
    with entrypoint_serving(env) as server:
        database.execute("BEGIN IMMEDIATE")  # another process holds the write lock throughout
        body = b'{"model": "trio", "stream": true, "messages": [{"role": "user", "content": "Hi"}]}'
        with socket.create_connection(("127.0.0.1", int(env["TRIO_PORT"]))) as client:
            client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
                           b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            time.sleep(0.3)  # hang up: the stream is stored as cancelled, which waits for the lock
        time.sleep(0.3)
    database.rollback()
    assert server.returncode == 0, server.output
    assert re.search(r"gave up storing trio-\w+; its outcome is lost: CompletionOutcome\(.*status='cancelled'",
                     server.output)

