"""Try Trio end to end without any LLM: `python scripts/demo.py` (or `make demo`).

1. starts the project's fake OpenAI-compatible backend in this process, with three simulated
   models of different quality: "sage" (good), "scholar" (fair) and "rookie" (poor, and it
   always prefers its own answer when it votes);
2. starts Trio as it runs in production: migrate, ensure_admin, then gunicorn with the uvicorn
   worker, on $TRIO_PORT or else a free port, pointed at the fake backend;
3. asks a few dozen questions concurrently through the OpenAI-compatible API;
4. prints where to look (vote history, leaderboard, admin) and serves until Ctrl-C.

SIGTERM and SIGHUP (a service manager, `timeout`, a closed terminal) stop it as Ctrl-C does:
gunicorn, its workers and the fake backend all end with it.

History goes to the database DATABASE_URL names (by default the project's trio.sqlite3), so it
is still there afterwards. `--once` stops after printing, for tests and scripts.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make the project importable

from ensemble.devtools.devserver import run_in_thread  # noqa: E402
from ensemble.devtools.fakebackend import Behaviour, FakeBackend  # noqa: E402

BACKEND_API_KEY = "sk-trio-demo-backend"  # Trio → fake backend
CLIENT_API_KEY = "trio-demo-key-not-for-production"  # demo → Trio, so the demo also works where API keys exist
# Similar speeds on purpose: Trio stops waiting for a member far slower than the others (it is
# recorded as "late"), and the demo is about the votes, not about stragglers.
MODELS = {
    "sage": Behaviour(quality=0.9, latency=0.2, jitter=0.1),
    "scholar": Behaviour(quality=0.65, latency=0.2, jitter=0.1),
    "rookie": Behaviour(quality=0.35, latency=0.15, jitter=0.1, self_favour=True),
}
QUESTIONS = [
    "What is the capital of Australia?", "Why is the sky blue?", "How many legs does a spider have?",
    "Explain recursion in one sentence.", "What is the boiling point of water at sea level?",
    "Who wrote Pride and Prejudice?", "What does HTTP stand for?", "Name three primary colours.",
    "What is 17 times 23?", "How far is the Moon from the Earth?", "What causes the seasons?",
    "What is a prime number?", "Translate 'good morning' into French.", "What is photosynthesis?",
    "Why do cats purr?", "What is the largest ocean on Earth?", "How does a bicycle stay upright?",
    "What is the difference between weather and climate?", "Summarise the plot of Hamlet.",
    "What is the speed of light?", "How do vaccines work?", "What is a haiku? Write one.",
    "Which planet has the most moons?", "What is compound interest?", "How do bees make honey?",
    "What is the tallest mountain in Africa?", "Explain what a database index is.",
    "Why does ice float?", "What is the Pythagorean theorem?", "Who painted the Mona Lisa?",
    "How many bones are in the adult human body?", "What is an API?", "Why do we have leap years?",
    "What language has the most native speakers?", "What is entropy, simply put?",
    "Suggest a name for a friendly robot.",
]
SERVER_START_TIMEOUT = 30.0
# gunicorn, idle or finishing the demo's last questions, stops well within this; then it is killed.
SERVER_STOP_TIMEOUT = 10.0


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the process exit status."""
    options = parse_args(argv)
    stop_on_signals(signal.SIGTERM, signal.SIGHUP)
    with run_in_thread(FakeBackend(models=MODELS, api_key=BACKEND_API_KEY, seed=7)) as backend:
        env = trio_environment(backend.url, options.port)
        prepare_database(env)
        server = start_trio(env, options.port)
        try:
            base_url = f"http://127.0.0.1:{options.port}"
            wait_until_live(server, base_url)
            asyncio.run(ask_questions(base_url, options.questions, options.concurrency))
            print_urls(base_url)
            if not options.once:
                print("Serving until Ctrl-C.", flush=True)
                server.wait()
        except KeyboardInterrupt:
            print("\nStopping.")
        finally:
            stop(server)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=len(QUESTIONS), help="how many questions to ask")
    parser.add_argument("--concurrency", type=int, default=12, help="questions in flight at once")
    parser.add_argument("--port", type=int, default=int(os.environ.get("TRIO_PORT") or 0) or free_port(),
                        help="port for Trio (default: $TRIO_PORT, else a free one)")
    parser.add_argument("--once", action="store_true", help="exit after printing the URLs instead of serving")
    return parser.parse_args(argv)


def stop_on_signals(*signums: signal.Signals) -> None:
    """Make each signal interrupt the demo as Ctrl-C does, so the same clean-up runs.

    Python's default for SIGTERM and SIGHUP ends the process at once, skipping every `finally`:
    gunicorn was left serving on the port, its backend gone.
    """
    def interrupt(signum: int, frame) -> None:
        raise KeyboardInterrupt

    for signum in signums:
        signal.signal(signum, interrupt)


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def trio_environment(backend_url: str, port: int) -> dict[str, str]:
    """Return the environment Trio runs with: this one, pointed at the fake backend."""
    return {
        **os.environ,
        "TRIO_BACKEND_URL": backend_url,
        "TRIO_BACKEND_API_KEY": BACKEND_API_KEY,
        "TRIO_MODELS": ",".join(MODELS),
        "TRIO_API_KEYS": CLIENT_API_KEY,
        "TRIO_PORT": str(port),
    }


def prepare_database(env: dict[str, str]) -> None:
    """Apply migrations and create the admin user, exactly as `make run` and the container do."""
    for command in (["migrate", "--noinput", "--verbosity", "0"], ["ensure_admin"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True)


def start_trio(env: dict[str, str], port: int) -> subprocess.Popen:
    """Start gunicorn with the uvicorn worker, as production does; return the process.

    It gets a process group of its own, so that only the demo signals it: the terminal's Ctrl-C
    reaches the demo alone, which then stops gunicorn (a SIGHUP from a closed terminal would
    otherwise make gunicorn reload its workers, not stop), and stop() can kill the whole group.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "trio_site.asgi:application", "-c", "python:trio_site.gunicorn_conf",
         "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", "1",
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=ROOT, env=env, process_group=0,
    )


def wait_until_live(server: subprocess.Popen, base_url: str) -> None:
    """Return once /health answers; raise SystemExit if gunicorn exits or never answers."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with status {server.returncode} (is the port taken?)")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"Trio did not answer {base_url}/health within {SERVER_START_TIMEOUT:g} s")


async def ask_questions(base_url: str, count: int, concurrency: int) -> None:
    """Ask `count` questions, `concurrency` at a time, and print who won how often."""
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(count)]
    limit = asyncio.Semaphore(concurrency)
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {CLIENT_API_KEY}"}
    async with httpx.AsyncClient(base_url=f"{base_url}/v1", headers=headers, timeout=60) as client:
        async def ask(question: str) -> str:
            async with limit:
                return await ask_one(client, question)

        winners = await asyncio.gather(*(ask(q) for q in questions))
    tally = ", ".join(f"{model} {n}" for model, n in collections.Counter(winners).most_common())
    print(f"\nAsked {count} questions in {time.monotonic() - started:.1f} s. Winners: {tally}.")


async def ask_one(client: httpx.AsyncClient, question: str) -> str:
    """Return the winning model's name for one question (or why there was none)."""
    response = await client.post("/chat/completions", json={
        "model": "trio", "messages": [{"role": "user", "content": question}],
    })
    if response.status_code != 200:
        return f"no winner (HTTP {response.status_code})"
    details = response.json().get("trio", {})
    winner = details.get("winner_index")
    return details["candidates"][winner]["model"] if winner is not None else "no winner"


def print_urls(base_url: str) -> None:
    print(
        f"\nTrio is running at {base_url}\n"
        f"  vote history  {base_url}/votes/\n"
        f"  leaderboard   {base_url}/leaderboard/\n"
        f"  admin         {base_url}/admin/  (password: TRIO_ADMIN_PASSWORD, or printed when the admin was first\n"
        f"                created; forgot it? `.venv/bin/python manage.py changepassword admin`)\n"
        f"  API           {base_url}/v1  (model \"trio\", API key {CLIENT_API_KEY})\n",
        flush=True,
    )


def stop(server: subprocess.Popen) -> None:
    """Stop gunicorn gracefully, or kill it and its workers if it will not go."""
    if server.poll() is None:
        server.terminate()  # gunicorn's graceful stop: its workers finish, then it exits
        try:
            server.wait(timeout=SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(server.pid, signal.SIGKILL)  # a worker left by a master that died or was killed
    except ProcessLookupError:
        pass
    server.wait()


if __name__ == "__main__":
    sys.exit(main())
