"""Reading the job's ClassAd files that HTCondor drops beside a job, without HTCondor's bindings.

The starter runs inside the job on execute nodes that may have no Python bindings, so it reads
the file named by ``_CONDOR_JOB_AD`` (and ``_CONDOR_MACHINE_AD``) itself. These files hold one
``Name = value`` per line; only literal values are needed (strings, integers, reals, booleans),
so anything else (an expression) is skipped rather than evaluated.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

JOB_AD_ENV = "_CONDOR_JOB_AD"
MACHINE_AD_ENV = "_CONDOR_MACHINE_AD"

# Our job ad attributes (documented in docs/POOLS.md: our starter sets them, the
# client reads them).
OWNER_KEY_ATTR = "CondorJobProxyOwnerKey"     # set by the submit file: the owner's public key(s)
ADDRESS_ATTR = "CondorJobProxyAddress"        # set by the starter: host:port of its server
STARTER_KEY_ATTR = "CondorJobProxyKey"        # set by the starter: its public signing key
USER_ATTR = "CondorJobProxyUser"              # set by the starter: the account sessions run as
NO_TERMINAL_ATTR = "CondorJobProxyNoTerminal"  # set by the starter only where sessions get no pty
# What the starter sets; in a parallel-universe job each node's under its own name (node_attribute).
STARTER_ATTRS = (ADDRESS_ATTR, STARTER_KEY_ATTR, USER_ATTR, NO_TERMINAL_ATTR)
PARALLEL_UNIVERSE = 11

_LINE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*")
_INT = re.compile(r"[+-]?[0-9]+")
_REAL = re.compile(r"[+-]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}
_SINFUL_HOST = re.compile(r"<\[?([0-9A-Fa-f.:]+?)\]?:[0-9]+")

Value = str | int | float | bool


class JobAdError(Exception):
    """The job ad is missing or lacks something the starter needs."""


def parse(text: str) -> dict[str, Value]:
    """Literal attributes of a ClassAd in ``Name = value`` form; names keep their spelling."""
    ad: dict[str, Value] = {}
    for line in text.splitlines():
        match = _LINE.fullmatch(line)
        if match:
            value = parse_literal(match.group(2))
            if value is not None:
                ad[match.group(1)] = value
    return ad


def parse_literal(text: str) -> Value | None:
    """A ClassAd literal (string with escapes, integer, real, boolean), None for anything else."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if _INT.fullmatch(text):
        return int(text)
    if _REAL.fullmatch(text):
        return float(text)
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return _unescape(text[1:-1])
    return None


def quote(value: str) -> str:
    """A string as a ClassAd string literal (for chirp and submit files)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def lookup(ad: dict[str, Value], name: str) -> Value | None:
    """ClassAd attribute names are case-insensitive."""
    lowered = name.lower()
    return next((value for key, value in ad.items() if key.lower() == lowered), None)


def read_job_ad(path: str | os.PathLike | None = None) -> dict[str, Value]:
    """The job's own ad (``$_CONDOR_JOB_AD``), as the starter found it when the job started."""
    path = path or os.environ.get(JOB_AD_ENV)
    if not path:
        raise JobAdError(f"no job ad: ${JOB_AD_ENV} is not set (is this running as an HTCondor job?)")
    try:
        return parse(Path(path).read_text(errors="replace"))
    except OSError as err:
        raise JobAdError(f"cannot read the job ad {path}: {err.strerror}") from None


def execute_host() -> str | None:
    """The execute node's address as the pool knows it: the startd's, from the machine ad."""
    path = os.environ.get(MACHINE_AD_ENV)
    if not path:
        return None
    try:
        address = lookup(parse(Path(path).read_text(errors="replace")), "MyAddress")
    except OSError:
        return None
    match = _SINFUL_HOST.match(address) if isinstance(address, str) else None
    return match.group(1) if match else None


def _unescape(body: str) -> str:
    out, index = [], 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            nxt = body[index + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def node_attribute(name: str, node: int | None) -> str:
    """The job ad attribute the starter of ``node`` publishes ``name`` as: ``name`` itself for
    a job of one node, ``name_K`` for node K of a parallel job (its nodes share one ad)."""
    return name if node is None else f"{name}_{node}"
