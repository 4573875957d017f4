"""Job ids (cluster.proc[.node]) and the ssh host names that stand for them.

Parsing is strict on purpose: a host name reaches us from ssh's command line, and anything
we accept ends up in file names and log lines.
"""
from __future__ import annotations

import re
from typing import NamedTuple

DEFAULT_HOST_PREFIX = "job-"
MAX_ID = 2**31 - 1           # HTCondor ids are C ints
_JOB_ID = re.compile(r"(0|[1-9][0-9]{0,9})(?:\.(0|[1-9][0-9]{0,9})(?:\.(0|[1-9][0-9]{0,9}))?)?")


class BadJobId(ValueError):
    """A string that is not a job id or a job host name."""


class JobId(NamedTuple):
    """A named tuple rather than a dataclass: ``dataclasses`` costs the ProxyCommand ~6 ms to
    import (it pulls in ``inspect``); tuples also give the ordering and hashing ids need."""
    cluster: int
    proc: int = 0
    node: int | None = None

    def __str__(self) -> str:
        text = f"{self.cluster}.{self.proc}"
        return text if self.node is None else f"{text}.{self.node}"

    def host(self, prefix: str = DEFAULT_HOST_PREFIX) -> str:
        """The ssh host name users type for this job."""
        return prefix + str(self)


def parse_job_id(text: str) -> JobId:
    """Parse ``32``, ``32.0`` or ``32.0.1``; a bare cluster means proc 0, as in condor_ssh_to_job."""
    match = _JOB_ID.fullmatch(text)
    if match is None:
        raise BadJobId(f"invalid job id {_shorten(text)!r}: expected cluster, cluster.proc "
                       "or cluster.proc.node")
    cluster, proc, node = (None if part is None else int(part) for part in match.groups())
    if max(cluster, proc or 0, node or 0) > MAX_ID:
        raise BadJobId(f"invalid job id {_shorten(text)!r}: number too large")
    return JobId(cluster, proc or 0, node)


def parse_host(host: str, prefix: str = DEFAULT_HOST_PREFIX) -> JobId:
    """Turn a job host name (``job-32.0``) into its job id. The prefix is matched without
    case, as ssh matches Host patterns (and ssh's %h, which the generated config passes, is
    lowercased), so ``Job-32.0`` works with the prefix ``Job-`` whatever the case typed."""
    head = host[:len(prefix)]
    if not head.isascii() or head.lower() != prefix.lower():   # no Unicode folding (K, U+212A)
        raise BadJobId(f"{_shorten(host)!r} is not a job host name: expected "
                       f"{prefix}<cluster>[.<proc>[.<node>]], e.g. {prefix}32.0")
    try:
        return parse_job_id(host[len(prefix):])
    except BadJobId:
        raise BadJobId(f"{_shorten(host)!r} is not a job host name: expected "
                       f"{prefix}<cluster>[.<proc>[.<node>]], e.g. {prefix}32.0") from None


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
