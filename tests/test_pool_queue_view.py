"""``condor-job-proxy jobs`` on a pool is a tiny condor_q: my jobs in every state, by id.

The schedd is the stand-in (tests/htcondor_standin); the listing, the include and the proxy
are ours.
"""
from __future__ import annotations

import json

from test_htcondor_pool import Pool, _me, pool  # noqa: F401


def _queue(pool: Pool) -> None:
    """Jobs added out of order, in every state a queue holds, one of them another user's."""
    pool.add_job(41, JobStatus=4)
    pool.add_job(7, JobStatus=5, HoldReason="Error from slot1@exec.test: memory limit exceeded")
    pool.add_job(30, JobStatus=2, CondorJobProxyUser=_me())
    pool.add_job(12, JobStatus=1)
    pool.add_job(12, ProcId=1, JobStatus=7)
    pool.add_job(3, JobStatus=3)
    pool.add_job(9, JobStatus=6)
    pool.add_job(8, JobStatus=2, Owner="somebody-else")


def test_jobs_lists_my_jobs_in_every_state_sorted_by_id(pool: Pool) -> None:
    _queue(pool)
    listed = json.loads(pool.proxy("jobs", "--json").stdout)
    assert [(job["job"], job["state"]) for job in listed] == [
        ("3.0", "removed"), ("7.0", "held"), ("9.0", "transferring_output"), ("12.0", "idle"),
        ("12.1", "suspended"), ("30.0", "running"), ("41.0", "completed")]
    held = listed[1]
    assert held["hold_reason"] == "Error from slot1@exec.test: memory limit exceeded"
    assert all(job["hold_reason"] == "" for job in listed if job is not held)


def test_jobs_table_shows_why_a_job_is_held(pool: Pool) -> None:
    _queue(pool)
    table = pool.proxy("jobs").stdout.decode().splitlines()
    ids = [line.split()[0] for line in table[1:] if not line.startswith(" ")]
    assert ids == ["3.0", "7.0", "9.0", "12.0", "12.1", "30.0", "41.0"]
    held = table.index(next(line for line in table if line.startswith("7.0 ")))
    assert table[held].split()[2] == "held"
    assert table[held + 1].split() == ["held:", "Error", "from", "slot1@exec.test:", "memory",
                                       "limit", "exceeded"]


def test_config_refresh_writes_hosts_only_for_jobs_one_can_enter(pool: Pool) -> None:
    _queue(pool)
    assert pool.proxy("config", "refresh").returncode == 0
    include = pool.proxy("config", "show").stdout.decode()
    hosts = [line.split()[1:] for line in include.splitlines() if line.startswith("Host job-")
             and "*" not in line]
    assert hosts == [["job-12.1"], ["job-30.0", "job-30"]]   # suspended (resumes), running
    assert pool.proxy("jobs", "--names").stdout.decode() == "job-12.1\njob-30.0\n"
