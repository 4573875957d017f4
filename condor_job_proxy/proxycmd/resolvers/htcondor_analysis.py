"""Why an idle HTCondor job does not run yet, in one line (after condor_q -better-analyze).

The resource requests are what most often keep a job idle, and they can be checked against
the slots the collector knows without a ClassAd evaluator: how many slots have the CPUs,
memory, disk and GPUs the job asks for, which request excludes the most of the rest, how many
matching slots are unclaimed, and what the negotiator said last (LastRejMatchReason). The
job's other Requirements (OpSys, custom attributes) are not evaluated here.
"""
from __future__ import annotations

from condor_job_proxy.common.names import printable

# job attribute, slot attribute, how a shortage is named
_REQUESTS = (("RequestCpus", "Cpus", "CPUs"), ("RequestMemory", "Memory", "MB memory"),
             ("RequestDisk", "Disk", "KB disk"), ("RequestGPUs", "GPUs", "GPUs"))
JOB_PROJECTION = ["ClusterId", "ProcId", "JobStatus", "LastRejMatchReason", "NumJobMatches",
                  *(job for job, _, _ in _REQUESTS)]
SLOT_PROJECTION = ["Name", "State", *(slot for _, slot, _ in _REQUESTS)]


def analyse(job_ad, slots: list) -> str:
    """"N of M slots match its requests; ..." for an idle job's ad and the pool's slot ads."""
    asks = {job: _number(job_ad, job) for job, _, _ in _REQUESTS}
    if not slots:
        return "the collector knows no slots"
    matching, short = [], {job: 0 for job, _, _ in _REQUESTS}
    for slot in slots:
        lacking = [job for job, attr, _ in _REQUESTS if (asks[job] or 0) > (_number(slot, attr) or 0)]
        for job in lacking:
            short[job] += 1
        if not lacking:
            matching.append(slot)
    parts = [f"{len(matching)} of {len(slots)} slots match its requests"]
    worst = max(short, key=short.get)
    if short[worst]:
        attr, noun = next((a, n) for j, a, n in _REQUESTS if j == worst)
        largest = max((_number(s, attr) or 0) for s in slots)
        parts.append(f"{short[worst]} have too few {noun} (asks {asks[worst]:g}, "
                     f"largest {largest:g})")
    free = sum(1 for slot in matching if slot.get("State") == "Unclaimed")
    if matching:
        parts.append(f"{free} of those unclaimed" if free else "all of those busy")
    reason = job_ad.get("LastRejMatchReason")
    if isinstance(reason, str) and reason:
        parts.append(f"negotiator: {printable(reason, 300)}")   # the schedd's text, for a terminal
    return "; ".join(parts)


def _number(ad, name: str) -> float | None:
    """A numeric attribute; an expression (RequestMemory often is one) evaluated in the ad."""
    value = ad.get(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    evaluate = getattr(ad, "eval", None)
    if value is not None and evaluate is not None:
        try:
            value = evaluate(name)
        except Exception:   # noqa: BLE001 - the bindings raise several kinds; no number then
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
    return None
