"""Stand-in for an execute node's condor_starter: what HTCondor gives a job, and its end.

HTCondor 25.14's condor_starter (shared/reference/condor_ssh_to_job-behaviour.md, "The job's
environment on an execute node") puts the job ad, the machine ad and (with WantIOProxy) the
chirp configuration in the job's scratch directory, and starts the job with an environment
that has no PATH: ``_CONDOR_BIN`` names the installation's bin (here the stand-in's, which
holds condor_ssh_to_job) and condor_chirp lives only in its sibling libexec. When the job
exits, the schedd takes it out of the queue into its history, with its exit code; its
stderr is in the file the submit description's ``error`` named (Err).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from .htcondor2 import _pool

STANDIN = Path(__file__).resolve().parent
CONDOR_BIN = STANDIN / "bin"
CHIRP = STANDIN / "libexec" / "condor_chirp"
COMPLETED = 4


def job_environment(scratch: Path, ad: dict, pool_file: Path, schedd: str,
                    machine_address: str, own: dict[str, str] | None = None) -> dict[str, str]:
    """Write the files condor_starter writes into ``scratch``; the job's environment (no PATH).

    ``own`` is the job's own variables (the submit file's ``environment``)."""
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / ".job.ad").write_text("".join(f"{k} = {classad(v)}\n" for k, v in ad.items()))
    (scratch / ".machine.ad").write_text(f'MyAddress = "{machine_address}"\n'
                                         'Machine = "exec.test"\n')
    env = {"HOME": os.path.expanduser("~"), "TMPDIR": str(scratch), "TMP": str(scratch),
           "TEMP": str(scratch), "BATCH_SYSTEM": "HTCondor", "_CONDOR_SLOT": "slot1",
           "_CONDOR_JOB_AD": str(scratch / ".job.ad"),
           "_CONDOR_MACHINE_AD": str(scratch / ".machine.ad"),
           "_CONDOR_SCRATCH_DIR": str(scratch), "_CONDOR_JOB_IWD": str(scratch),
           "_CONDOR_BIN": str(CONDOR_BIN), "OMP_NUM_THREADS": "1"}
    if ad.get("WantIOProxy") is True:
        # The stand-in chirp's config; the real one names the execute node's chirp proxy.
        (scratch / ".chirp.config").write_text(json.dumps(
            {"pool": str(pool_file), "schedd": schedd, "job": f"{ad['ClusterId']}.{ad['ProcId']}"}))
        env["_CONDOR_CHIRP_CONFIG"] = str(scratch / ".chirp.config")
    return {**env, **(own or {})}


def classad(value) -> str:
    """A value as a job ad file writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int) else json.dumps(value)


def run_to_completion(pool_file: Path, schedd: str, cluster: int, scratch: Path,
                      machine_address: str = "<127.0.0.1:9618>",
                      own: dict[str, str] | None = None, timeout: float = 60) -> int:
    """Run idle job ``cluster``.0 as condor_starter would (its Cmd and Arguments, stdout to Out,
    stderr to Err), then move it to the schedd's history as completed with its exit code."""
    ad = _set(pool_file, schedd, cluster, JobStatus=2, JobCurrentStartDate=int(time.time()))
    env = job_environment(scratch, ad, pool_file, schedd, machine_address, own)
    with open(_output(ad, "Out"), "ab") as out, open(_output(ad, "Err"), "ab") as err:
        status = subprocess.run([ad["Cmd"], *arguments(ad.get("Arguments", ""))], cwd=scratch,
                                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                timeout=timeout).returncode
    with _pool.editing(pool_file) as state:
        queue = state["schedds"][schedd]
        ad = next(job for job in queue["jobs"] if job["ClusterId"] == cluster)
        queue["jobs"].remove(ad)
        ad.update(JobStatus=COMPLETED, ExitCode=status, ExitBySignal=False,
                  CompletionDate=int(time.time()), EnteredCurrentStatus=int(time.time()))
        queue.setdefault("history", []).insert(0, ad)   # the newest first, as condor_history
    return status


def arguments(text: str) -> list[str]:
    """The job ad's Arguments (the new syntax, outer double quotes gone) as argv words: a word
    in single quotes may hold spaces, '' in it is one quote."""
    return [word[1].replace("''", "'") if word[2] is None else word[2]
            for word in re.finditer(r"'((?:[^']|'')*)'|(\S+)", text)]


def _set(pool_file: Path, schedd: str, cluster: int, **attrs) -> dict:
    with _pool.editing(pool_file) as state:
        ad = next(job for job in state["schedds"][schedd]["jobs"] if job["ClusterId"] == cluster)
        ad.update(attrs)
        return dict(ad)


def _output(ad: dict, name: str) -> str:
    """Out/Err as the schedd keeps them: relative to the job's Iwd; /dev/null when not given."""
    path = ad.get(name, "/dev/null")
    return path if os.path.isabs(path) else os.path.join(ad.get("Iwd", "."), path)
