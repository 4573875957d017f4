"""Setting attributes of our own job ad through HTCondor's ``condor_chirp`` tool.

The job needs ``+WantIOProxy = true`` (submit file): the execute node's condor_starter then
runs a chirp proxy that forwards ``set_job_attr`` to the job's ad in the schedd. HTCondor
installs the tool in its libexec directory, which is not on a job's PATH, so the usual places
are searched too; ``$CONDOR_JOB_PROXY_CHIRP`` names it explicitly.
"""
from __future__ import annotations

import os
import shutil
import subprocess

CHIRP_ENV = "CONDOR_JOB_PROXY_CHIRP"
_PLACES = ("/usr/libexec/condor/condor_chirp", "/usr/lib/condor/libexec/condor_chirp",
           "/usr/libexec/condor_chirp", "/usr/local/libexec/condor_chirp")
TIMEOUT_SECONDS = 60


class ChirpError(Exception):
    """condor_chirp is missing or refused the update."""


def find_chirp() -> str:
    explicit = os.environ.get(CHIRP_ENV)
    if explicit:
        return explicit
    found = shutil.which("condor_chirp") or next(
        (place for place in _PLACES if os.access(place, os.X_OK)), None)
    if not found:
        raise ChirpError(f"condor_chirp not found on PATH nor in {', '.join(_PLACES)} "
                         f"(set ${CHIRP_ENV})")
    return found


def set_job_attr(name: str, expression: str, chirp: str | None = None) -> None:
    """``condor_chirp set_job_attr NAME EXPR``: EXPR in ClassAd syntax (strings quoted)."""
    tool = chirp or find_chirp()
    try:
        proc = subprocess.run([tool, "set_job_attr", name, expression], capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ChirpError(f"cannot run {tool}: {err}") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        raise ChirpError(f"condor_chirp set_job_attr {name} failed (exit {proc.returncode}): "
                         f"{detail[-1] if detail else 'no message'} (is +WantIOProxy = true "
                         "in the submit file?)")
