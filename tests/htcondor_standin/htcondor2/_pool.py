"""The stand-in pool's state: one JSON file of schedds and their job ads.

Tests write it to set up jobs; the stand-in bindings read it; the stand-in condor_chirp
updates it the way a real chirp update reaches the schedd's copy of the job ad. Its path is
``$HTCONDOR_STANDIN_POOL``. Layout::

    {"collector": "cm.test", "local_schedd": "ap1.test",
     "schedds": {"ap1.test": {"address": "<192.0.2.1:9618>", "jobs": [{"ClusterId": 5, ...}]}}}
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from pathlib import Path

POOL_ENV = "HTCONDOR_STANDIN_POOL"
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"'}


def pool_file() -> Path:
    return Path(os.environ[POOL_ENV])


def load(path: Path | None = None) -> dict:
    return json.loads((path or pool_file()).read_text())


@contextlib.contextmanager
def editing(path: Path | None = None):
    """Read-modify-write the pool file under a lock; yields the state to change in place."""
    path = path or pool_file()
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = load(path)
        yield state
        temp = path.with_name(f".{path.name}.{os.getpid()}")
        temp.write_text(json.dumps(state, indent=1))
        os.replace(temp, path)


def parse_literal(text: str):
    """A ClassAd literal as condor_chirp and the schedd accept it: string, integer, boolean."""
    text = text.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    if re.fullmatch(r'"(?:[^"\\]|\\.)*"', text):
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), text[1:-1])
    raise ValueError(f"stand-in cannot parse ClassAd value {text!r}")


def matches(ad: dict, constraint: str) -> bool:
    """Evaluate a conjunction of ``Attr == literal`` (the only constraints our backend sends).

    String comparison with ``==`` is case-insensitive, as in ClassAds; a missing attribute is
    undefined, which never matches. Anything else is refused, so a new kind of query fails
    loudly instead of silently matching.
    """
    if constraint.strip() in ("True", "true"):
        return True
    lowered = {key.lower(): value for key, value in ad.items()}
    for term in constraint.split("&&"):
        match = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*==\s*(.+?)\s*", term)
        if not match:
            raise ValueError(f"stand-in cannot evaluate constraint {constraint!r}")
        wanted, actual = parse_literal(match.group(2)), lowered.get(match.group(1).lower())
        if isinstance(wanted, str) and isinstance(actual, str):
            if wanted.lower() != actual.lower():
                return False
        elif type(wanted) is not type(actual) or wanted != actual:
            return False
    return True
