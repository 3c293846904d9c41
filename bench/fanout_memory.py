"""What one large request does to a worker's memory: RSS before, peak and after, per ensemble.

A chat completion fans the conversation out to every backend call of its ensemble (each with its
own serialized copy), so a worker's peak grows with body size × calls; TRIO_MAX_FANOUT_BYTES
bounds that product. This sends one request of about `--mb` MB to a fresh worker, once with the
default three-model ensemble and once with a 27-member DSL ensemble nested 3 deep, and prints
the worker's VmRSS before, its VmHWM (peak) after, and the status answered.

    python bench/fanout_memory.py --mb 9
"""
import argparse
import os
import sys
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import fake_backend, rss_kib, trio_server, worker_pids  # noqa: E402

MODELS = "alpha,beta,gamma"


def nested_27() -> dict:
    """Return the DSL ensemble with the most backend calls the member limits allow (52): three
    levels of 9 members (27 in all), each level 8 models and the next level (the last: 9 models)."""
    spec = {"ensemble": [{"model": f"c{i}"} for i in range(9)]}
    for level in ("b", "a"):
        spec = {"ensemble": [{"model": spec}, *({"model": f"{level}{i}"} for i in range(8))]}
    return spec


def peak_kib(pid: int) -> int:
    """Return the most memory process `pid` has held (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for {pid}")


def measure(backend_url: str, model, size: int, extra_env: dict) -> None:
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "a" * size}]})
    with trio_server(backend_url, MODELS, extra_env=extra_env) as (url, master):
        [worker] = worker_pids(master)
        httpx.post(f"{url}/v1/chat/completions", json={"model": "trio", "messages": [
            {"role": "user", "content": "warm up"}]}, timeout=60)
        before = rss_kib(worker)
        response = httpx.post(f"{url}/v1/chat/completions", content=body,
                              headers={"content-type": "application/json"}, timeout=300)
        label = "trio (3 models)" if model == "trio" else "DSL, 27 members, 3 levels"
        print(f"{label:28} body {len(body) / 1e6:5.1f} MB  status {response.status_code}  "
              f"RSS before {before / 1024:6.0f} MiB  peak {peak_kib(worker) / 1024:6.0f} MiB  "
              f"after {rss_kib(worker) / 1024:6.0f} MiB")
        if response.status_code != 200:
            print("   ", response.json()["error"]["message"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=9.0, help="body size in MB (10**6 bytes)")
    args = parser.parse_args()
    size = int(args.mb * 1e6)
    with fake_backend(latency=0.01) as backend_url:
        for model in ("trio", nested_27()):
            measure(backend_url, model, size, {"TRIO_TIMEOUT": "120"})


if __name__ == "__main__":
    main()
