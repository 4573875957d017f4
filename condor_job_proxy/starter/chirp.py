"""Setting attributes of our own job ad through HTCondor's ``condor_chirp`` tool.

The job needs ``+WantIOProxy = true`` (submit file): the execute node's condor_starter then
runs a chirp proxy that forwards ``set_job_attr`` to the job's ad in the schedd. HTCondor
installs the tool in its libexec directory, and a job's environment has no PATH at all; what
it has is ``$_CONDOR_BIN``, the installation's bin, whose sibling libexec holds chirp (a
tarball's ``<prefix>/libexec``). So chirp is looked for there, then on PATH, then in the
packages' places; ``$CONDOR_JOB_PROXY_CHIRP`` names it explicitly.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHIRP_ENV = "CONDOR_JOB_PROXY_CHIRP"
CONDOR_BIN_ENV = "_CONDOR_BIN"   # set by HTCondor's condor_starter in every job's environment
_PLACES = ("/usr/libexec/condor/condor_chirp", "/usr/lib/condor/libexec/condor_chirp",
           "/usr/libexec/condor_chirp", "/usr/local/libexec/condor_chirp")
TIMEOUT_SECONDS = 60


class ChirpError(Exception):
    """condor_chirp is missing or refused the update."""


def find_chirp() -> str:
    explicit = os.environ.get(CHIRP_ENV)
    if explicit:
        return explicit
    beside = _beside_condor_bin()
    found = (_first_executable(beside) or shutil.which("condor_chirp")
             or _first_executable(_PLACES))
    if not found:
        raise ChirpError(f"condor_chirp not found in {', '.join(beside + _PLACES)} nor on PATH "
                         f"(set ${CHIRP_ENV})")
    return found


def _first_executable(places: tuple[str, ...]) -> str | None:
    return next((place for place in places if os.access(place, os.X_OK)), None)


def _beside_condor_bin() -> tuple[str, ...]:
    """``$_CONDOR_BIN/../libexec/condor_chirp``: where the installation that runs this job
    keeps chirp, whatever its prefix."""
    condor_bin = os.environ.get(CONDOR_BIN_ENV)
    if not condor_bin:
        return ()
    return (str(Path(condor_bin).parent / "libexec" / "condor_chirp"),)


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
