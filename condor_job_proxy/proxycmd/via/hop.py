"""The hop to the access point: the user's own ``ssh`` running our command there.

Running the user's ssh (not a library) means their config for the access point applies as
is: keys, agent, ProxyJump, 2FA prompts, ControlMaster. Used by ``connect --via`` and by
``setup``/``config refresh --via``, which list the jobs on the access point.
"""
from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from typing import NamedTuple

from condor_job_proxy.common.jobid import BadJobId, parse_job_id
from condor_job_proxy.common.names import LOGIN_NAME, printable

from ..errors import ProxyError
from ..model import JobSummary

DEFAULT_COMMAND = "condor-job-proxy"
LIST_SECONDS = 120.0


class Hop(NamedTuple):
    target: str                       # [user@]access-point, as the user's ssh knows it
    command: str = DEFAULT_COMMAND    # condor-job-proxy on the access point (a shell word)


def check_target(target: str) -> str:
    """A hop target ssh takes as a host, never as an option or two words."""
    if not target or target.startswith("-") or any(c.isspace() or c in "'\"\\" for c in target):
        raise ProxyError(f"{target!r} is not an access point name for ssh: give [user@]host")
    return target


def ssh_argv(hop: Hop, words: list[str]) -> list[str]:
    """The user's ssh running ``<command> WORDS...`` on the access point, with no terminal and
    none of the user's forwardings for that host (they would clash on every job connect)."""
    ssh = shutil.which("ssh")
    if ssh is None:
        raise ProxyError("no ssh on PATH: install OpenSSH's client to reach the access point")
    remote = f"{hop.command} {shlex.join(words)}"
    return [ssh, "-T", "-o", "ClearAllForwardings=yes", "-o", "ForwardX11=no",
            check_target(hop.target), remote]


def run(hop: Hop, words: list[str]) -> subprocess.CompletedProcess:
    """``<command> WORDS...`` on the access point, its output captured (bytes)."""
    try:
        return subprocess.run(ssh_argv(hop, words), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=LIST_SECONDS)
    except subprocess.TimeoutExpired:
        raise ProxyError(f"{hop.target} did not answer within {LIST_SECONDS:g} s") from None


def ssh_reason(stderr: bytes) -> str:
    """The last thing ssh (or the command there) said on stderr, printable: why the hop
    failed ("Connection refused", "Host key verification failed."); "" when it said nothing."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines()]
    said = [line for line in lines if line and not line.startswith("@")]
    return printable(said[-1], 500) if said else ""


def list_jobs(hop: Hop, own: bool = False) -> list[JobSummary]:
    """The access point's job list (``condor-job-proxy jobs --json`` there); ``own``: only the
    jobs it gives Host blocks (``--names``: not another account's local job, which is entered
    only by typing its name), for the laptop's include."""
    proc = run(hop, ["jobs", "--json", *(["--names"] if own else [])])
    if proc.returncode != 0:
        reason = ssh_reason(proc.stderr) or f"ssh exit status {proc.returncode}"
        raise ProxyError(f"cannot list the jobs on {hop.target}: {reason}")
    try:
        listed = [_summary(entry) for entry in json.loads(proc.stdout)]
    except (ValueError, TypeError, KeyError, BadJobId, RecursionError):
        raise ProxyError(f"{hop.target} sent a job list this version cannot read") from None
    return [job for job in listed if job is not None]


def _summary(entry: dict) -> JobSummary | None:
    """One listed job; names end up in the ssh config, so nothing there may span lines, and
    what a listing shows reaches a terminal, so no control character. A job whose login user
    is no login name (a uid without a passwd entry there, shown as "uid N") is left out: one
    such job must not cost the laptop the whole list."""
    user = str(entry["user"])
    if not LOGIN_NAME.fullmatch(user):
        return None
    return JobSummary(parse_job_id(str(entry["job"])),
                      printable(" ".join(str(entry["owner"]).split()), 100), user,
                      printable(entry["state"], 20), float(entry["start_time"]),
                      tuple(printable(word, 200) for word in entry["command"]),
                      printable(entry.get("address", ""), 100),
                      tuple(int(pid) for pid in entry.get("pids") or ()),
                      _number(entry.get("memory_kb"), int), _number(entry.get("cpu_seconds"), float))


def _number(value: object, kind: type) -> int | float | None:
    """An accounting number of the access point's listing (None where it has none)."""
    return None if value is None else kind(value)
