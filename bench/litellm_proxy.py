"""Per-call overhead of a LiteLLM proxy: the fake backend called directly vs through LiteLLM.

The yardstick for `per_round.py`: Trio's overhead per backend round should be smaller than what a
plain LiteLLM proxy adds to one call. Same fake backend, same request, same load generator; LiteLLM
runs as `litellm --config` (uvicorn, one worker, master key, no database, no callbacks, logs at
WARNING) with one model `alpha` routed to `openai/alpha` on the fake backend. Measured one request
at a time (as `per_round.py`), then at a modest concurrency.

LiteLLM lives in its own virtualenv, not in the project's requirements:

    python3 -m venv bench/.litellm-venv && bench/.litellm-venv/bin/pip install 'litellm[proxy]'
    .venv/bin/python bench/litellm_proxy.py --latency 0.2 --requests 50 --concurrency 8
"""
import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import ROOT, fake_backend, free_port, p50_ms, running  # noqa: E402

BODY = {"model": "alpha", "messages": [{"role": "user", "content": "What is the tallest mountain in Africa?"}]}
MASTER_KEY = "sk-bench-litellm-master-key"
AUTHORIZATION = {"Authorization": f"Bearer {MASTER_KEY}"}
CONFIG = """\
model_list:
  - model_name: alpha
    litellm_params:
      model: openai/alpha
      api_base: {backend}/v1
      api_key: sk-fake-backend
"""
ENV = {  # offline and quiet: bundled cost map, no telemetry, no banner, no access log
    "LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY_DISABLED": "true", "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true", "LITELLM_LOG": "WARNING",
}


@contextlib.contextmanager
def litellm_proxy(venv: Path, backend: str):
    """Run the LiteLLM proxy from `venv` in front of `backend`; yield its base URL."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config, log = Path(tmp, "litellm.yaml"), Path(tmp, "litellm.log")
        config.write_text(CONFIG.format(backend=backend))
        cmd = [str(venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
        env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}  # no DB for LiteLLM
        with log.open("w") as out, running(cmd, {**env, **ENV}, cwd=Path(tmp), stdout=out) as process:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120  # imports and config load take 10-20 s on this machine
            while not _answers(f"{url}/health/liveliness"):
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"LiteLLM proxy did not come up; its output:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
            yield url


def _answers(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=1).status_code == 200
    return False


def litellm_version(venv: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8, help="second measurement; 0 or 1 to skip")
    parser.add_argument("--venv", type=Path, default=ROOT / "bench" / ".litellm-venv")
    args = parser.parse_args()
    venv = args.venv.resolve()
    if not (venv / "bin" / "litellm").exists():
        sys.exit(f"no LiteLLM in {venv}; create it with:\n"
                 f"    python3 -m venv {venv} && {venv}/bin/pip install 'litellm[proxy]'")

    rows = []
    with fake_backend(args.latency) as backend, litellm_proxy(venv, backend) as litellm:
        for concurrency in sorted({1, max(args.concurrency, 1)}):
            requests = max(args.requests, 4 * concurrency)
            for url in (backend, litellm):  # warm-up: connections, LiteLLM's first call
                p50_ms(url, BODY, 5 * concurrency, concurrency=concurrency, headers=AUTHORIZATION)
            direct = p50_ms(backend, BODY, requests, concurrency=concurrency, headers=AUTHORIZATION)
            through = p50_ms(litellm, BODY, requests, concurrency=concurrency, headers=AUTHORIZATION)
            rows.append((concurrency, requests, direct, through))

    print(f"litellm {litellm_version(venv)}; backend latency {args.latency * 1000:.0f} ms")
    for concurrency, requests, direct, through in rows:
        print(f"concurrency {concurrency} ({requests} requests): direct call p50 {direct:.1f} ms; "
              f"through LiteLLM p50 {through:.1f} ms -> overhead per call {through - direct:.1f} ms "
              f"({through / direct:.3f} x direct)")


if __name__ == "__main__":
    main()
