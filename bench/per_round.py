"""Per-round overhead: the fake backend called directly vs through Trio, one request at a time.

A completion is two backend rounds (generation, then voting); with no concurrency there is no
queueing, so (Trio's latency - 2 x the direct latency) / 2 is what Trio adds per round: HTTP in
and out, validation, fan-out, ballot building and parsing, and the stored write. Compare it with
what a LiteLLM proxy adds to one call: `litellm_proxy.py`.

    python bench/per_round.py --latency 0.2 --requests 50
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.harness import fake_backend, p50_ms, trio_server  # noqa: E402

MESSAGES = [{"role": "user", "content": "What is the tallest mountain in Africa?"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()

    with fake_backend(args.latency) as backend:
        direct = p50_ms(backend, {"model": "alpha", "messages": MESSAGES}, args.requests * 2)
        with trio_server(backend, "alpha@quality=0.9,beta,gamma") as (trio, _):
            p50_ms(trio, {"model": "trio", "messages": MESSAGES}, 5)  # warm-up
            through = p50_ms(trio, {"model": "trio", "messages": MESSAGES}, args.requests)
            single = p50_ms(trio, {"model": "alpha", "messages": MESSAGES}, args.requests)  # pass-through

    print(f"backend latency {args.latency * 1000:.0f} ms; direct call p50 {direct:.1f} ms")
    print(f"through Trio (2 rounds, 3 models) p50 {through:.1f} ms -> overhead per round "
          f"{(through - 2 * direct) / 2:.1f} ms ({through / (2 * direct):.3f} x ideal)")
    print(f"pass-through (1 round, 1 model) p50 {single:.1f} ms -> overhead {single - direct:.1f} ms")


if __name__ == "__main__":
    main()
