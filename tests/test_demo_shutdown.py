"""scripts/demo.py stopped as a service manager, `timeout` or a closed terminal stops it leaves nothing behind.

Those send SIGTERM or SIGHUP to the demo alone, not Ctrl-C's SIGINT to the whole foreground group:
the demo must stop gunicorn (master and workers) itself, as it does on Ctrl-C.
"""
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ensemble.devtools.devserver import free_port

from .conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent
READY = "Serving until Ctrl-C."
# Generous for a loaded 2-core machine: the demo migrates a fresh database before it serves.
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


def process_table() -> dict[int, tuple[int, str]]:
    """Return {pid: (parent pid, start time)} for every live (not zombie) process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it ended while we looked
            continue
        # The command name, in parentheses, may itself hold spaces or parentheses.
        fields = stat[stat.rindex(")") + 2:].split()
        state, ppid, start_time = fields[0], int(fields[1]), fields[19]
        if state != "Z":
            table[int(entry.name)] = (ppid, start_time)
    return table


def descendants(pid: int) -> dict[int, str]:
    """Return {pid: start time} of every process below `pid` (the start time tells a reused pid apart)."""
    table = process_table()
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, start_time) in table.items():
            if ppid == parent and child not in found:
                found[child] = start_time
                frontier.append(child)
    return found


def survivors(processes: dict[int, str]) -> list[int]:
    table = process_table()
    return [pid for pid, start_time in processes.items() if pid in table and table[pid][1] == start_time]


def serving(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def lines_of(stream) -> queue.Queue:
    """Return a queue that receives each line `stream` writes, read in a thread (a pipe has no timeout)."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    return lines


def wait_for_line(lines: queue.Queue, text: str, timeout: float) -> list[str]:
    """Return the lines read up to the one containing `text`; fail if it does not come within `timeout`."""
    seen = []
    while not any(text in line for line in seen):
        try:
            seen.append(lines.get(timeout=timeout))
        except queue.Empty:
            pytest.fail(f"no {text!r} within {timeout:g} s; the demo wrote:\n{''.join(seen)}")
    return seen


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_the_demo_stopped_by_a_signal_stops_gunicorn_and_frees_its_port(tmp_path, signum):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
           "TRIO_ADMIN_PASSWORD": "demo-password", "PYTHONUNBUFFERED": "1"}
    demo = subprocess.Popen([sys.executable, "scripts/demo.py", "--questions", "1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # so that only the signal sent below reaches the demo
    children: dict[int, str] = {}
    try:
        wait_for_line(lines_of(demo.stdout), READY, START_TIMEOUT)
        children = descendants(demo.pid)
        assert len(children) >= 2, "gunicorn's master and its worker"
        assert serving(port)

        demo.send_signal(signum)

        demo.wait(timeout=STOP_TIMEOUT)
        assert wait_for(lambda: not survivors(children), timeout=STOP_TIMEOUT), survivors(children)
        assert not serving(port)
    finally:
        for pid in [demo.pid, *survivors(children)]:  # never leave a server behind, pass or fail
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        demo.wait()
