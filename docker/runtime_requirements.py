"""Print the runtime part of requirements.txt: every line before its `# Tests` heading.

The image installs only what the server needs; the test tools (pytest, Playwright, schemathesis,
LangChain, the openai SDK) are hundreds of megabytes it would carry for nothing. One
requirements.txt stays the list of everything, as `make setup` installs it. Stops the build if the
heading is gone, rather than install everything or nothing.

    python runtime_requirements.py requirements.txt > runtime-requirements.txt
"""
import sys
from pathlib import Path

TESTS_HEADING = "# Tests"


def runtime_lines(text: str) -> list[str]:
    """Return the lines of a requirements file before its `# Tests` heading."""
    lines = text.splitlines()
    headings = [i for i, line in enumerate(lines) if line.strip() == TESTS_HEADING]
    if not headings:
        raise SystemExit(f"requirements.txt has no {TESTS_HEADING!r} heading: cannot tell runtime from tests")
    return lines[:headings[0]]


if __name__ == "__main__":
    print("\n".join(runtime_lines(Path(sys.argv[1]).read_text())))
