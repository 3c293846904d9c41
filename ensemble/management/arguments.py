"""Argument types shared by the management commands.

Each returns the parsed value or raises argparse.ArgumentTypeError, which argparse reports as a
usage error naming the option (exit status 2; a CommandError under call_command).
"""
from __future__ import annotations

import argparse


def positive_int(value: str) -> int:
    """Return `value` as an integer of at least 1."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return int(value)


def port_number(value: str) -> int:
    """Return `value` as a TCP port: 0 (any free port) to 65535."""
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number from 0 to 65535")
    return int(value)
