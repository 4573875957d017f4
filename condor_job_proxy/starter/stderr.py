"""The starter's lines on its stderr (the job's error log): one place, so a module of the
agent can say something without importing the session server."""
from __future__ import annotations

import sys


def log(message: str) -> None:
    """One line from the starter on its stderr."""
    say(f"condor-job-starter: {message}")


def say(line: str) -> None:
    """A line on the starter's stderr. A stderr that cannot take it (a full disk, a closed
    pipe) must not end the job over a message."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
