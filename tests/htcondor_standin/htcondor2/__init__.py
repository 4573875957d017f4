"""Stand-in for HTCondor's ``htcondor2`` bindings, for tests only (never installed).

It implements exactly the calls condor-job-proxy's HTCondor resolver makes, with the real
signatures (checked against htcondor 25.14.1's htcondor2/_collector.py and _schedd.py):
``Collector(pool=None)``, ``Collector.locate(daemon_type, name=None)`` (None when no daemon
matches), ``Schedd(location=None)`` (the local schedd when None; TypeError unless a ClassAd),
``Schedd.query(constraint='True', projection=[], callback=None, limit=-1, opts=...)``,
``Schedd.act``, ``Schedd.history(constraint=None, projection=[], match=-1,
since=None)`` (the pool file's "history", newest first), ``Schedd.submit(description, count=0, spool=False, itemdata=...)`` returning a
``SubmitResult`` (cluster(), first_proc(), num_procs(), clusterad()), ``Submit`` (a mapping
of submit commands to strings), ``Collector.query(ad_type=AdType.Any, constraint=None,
projection=None, statistics=None)`` for slot ads, ``param`` (a mapping of the configuration,
as htcondor2/_param.py: typed values, KeyError for a name unset or set empty) and
``HTCondorException`` (signatures from htcondor2/_schedd.py, _submit.py, _submit_result.py,
_collector.py, _ad_type.py, _param.py). Job and slot ads and the configuration come from the
pool file (see ``_pool``); a submitted job is idle until a test moves it.
"""
from __future__ import annotations

import enum
from collections.abc import MutableMapping
from typing import Any, Callable, Iterator, List, Optional, Union

from . import _pool
from ._submit import DefaultItemData, Submit, SubmitResult, job_ad_from


class HTCondorException(Exception):
    pass


class DaemonType(enum.IntEnum):
    Any = 0
    Master = 1
    Schedd = 2
    Startd = 3
    Collector = 4
    Negotiator = 5


class AdType(enum.IntEnum):
    """The bindings' values (htcondor2/_ad_type.py); the stand-in collector has slot ads only."""
    Startd = 0
    Schedd = 1
    Master = 2
    Collector = 7
    Any = 10
    Negotiator = 13


class QueryOpts(enum.IntEnum):
    Default = 0


class ClassAd(dict):
    """Dict-like, as classad2.ClassAd is for the calls we make (get, [], in)."""


class _Param(MutableMapping):
    """``htcondor2.param``: the configuration read from the pool file at each lookup."""

    def __getitem__(self, key: str):
        if not isinstance(key, str):
            raise TypeError("key must be a string")
        return _pool.param_value(key)

    def __setitem__(self, key: str, value: str) -> None:
        raise NotImplementedError("the stand-in configuration is the pool file's")

    def __delitem__(self, key: str) -> None:
        raise NotImplementedError("the stand-in configuration is the pool file's")

    def __iter__(self):
        return iter(_pool.load().get("config", {}))

    def __len__(self) -> int:
        return len(_pool.load().get("config", {}))


param = _Param()


class Collector:
    def __init__(self, pool: Union[str, ClassAd, List[str], None] = None,
                 security: Any = None) -> None:
        state = _pool.load()
        if pool is not None and pool != state["collector"]:
            raise HTCondorException(f"Failed to connect to collector {pool}")
        self.state = state

    def locate(self, daemon_type: DaemonType, name: Optional[str] = None) -> ClassAd | None:
        if daemon_type != DaemonType.Schedd:
            raise HTCondorException("stand-in collector only knows schedds")
        name = name if name is not None else self.state["local_schedd"]
        schedd = self.state["schedds"].get(name)
        if schedd is None:
            return None
        return ClassAd(Name=name, MyType="Scheduler", MyAddress=schedd["address"],
                       CondorVersion="$CondorVersion: 25.14.1 (stand-in) $")

    def query(self, ad_type: AdType = AdType.Any, constraint: Optional[str] = None,
              projection: Optional[List[str]] = None,
              statistics: Optional[str] = None) -> List[ClassAd]:
        """Slot ads (the pool file's "startds"), as condor_status gets them."""
        if not isinstance(ad_type, AdType):
            raise TypeError("ad_type must be an AdType")
        if ad_type != AdType.Startd:
            raise HTCondorException(f"stand-in collector has no {ad_type.name} ads")
        try:
            found = [ad for ad in self.state.get("startds", [])
                     if _pool.matches(ad, str(constraint or "True"))]
        except ValueError as err:
            raise HTCondorException(str(err)) from None
        return [_project(ad, projection or []) for ad in found]


class JobAction(enum.IntEnum):
    """The bindings' values; the stand-in acts on Remove only."""
    Hold = 1
    Release = 2
    Remove = 3
    RemoveX = 4
    Vacate = 5
    VacateFast = 6
    Suspend = 8
    Continue = 9


class Schedd:
    def __init__(self, location: Optional[ClassAd] = None) -> None:
        if location is None:
            location = Collector().locate(DaemonType.Schedd)
        if not isinstance(location, ClassAd):
            raise TypeError("location must be a ClassAd")
        self._addr = location["MyAddress"]
        self._version = location["CondorVersion"]

    def query(self, constraint: str = "True", projection: List[str] = [],
              callback: Callable[[ClassAd], Any] = None, limit: int = -1,
              opts: QueryOpts = QueryOpts.Default) -> List[ClassAd]:
        schedd = next((s for s in _pool.load()["schedds"].values() if s["address"] == self._addr),
                      None)
        if schedd is None:
            raise HTCondorException(f"Failed to connect to schedd at {self._addr}")
        try:
            for ad in schedd["jobs"]:
                _pool.check_ad(ad)
            found = [ad for ad in schedd["jobs"] if _pool.matches(ad, str(constraint))]
        except ValueError as err:
            raise HTCondorException(str(err)) from None
        results = [_project(ad, projection) for ad in found][:limit if limit >= 0 else None]
        if callback is None:
            return results
        return [r for r in map(callback, results) if r is not None]

    def history(self, constraint: Optional[str] = None, projection: List[str] = [],
                match: int = -1, since: Optional[Union[int, str]] = None) -> List[ClassAd]:
        """Ads of jobs that have left the queue, newest first, as the schedd's history file
        gives them (the pool file's "history" list of a schedd, oldest first); ``since`` is
        not supported by the stand-in."""
        if since is not None:
            raise HTCondorException("stand-in schedd history does not take since")
        schedd = next((s for s in _pool.load()["schedds"].values() if s["address"] == self._addr),
                      None)
        if schedd is None:
            raise HTCondorException(f"Failed to connect to schedd at {self._addr}")
        try:
            found = [ad for ad in reversed(schedd.get("history", []))
                     if constraint is None or _pool.matches(ad, str(constraint))]
        except ValueError as err:
            raise HTCondorException(str(err)) from None
        return [_project(ad, projection) for ad in found][:match if match >= 0 else None]

    def history(self, constraint: Optional[str] = None, projection: List[str] = [],
                match: int = -1, since: Union[int, str, None] = None) -> List[ClassAd]:
        """Jobs that left the queue (completed or removed), the most recently recorded first,
        as condor_history: the pool file's "history" of this schedd."""
        if since is not None:
            raise HTCondorException("stand-in schedd history does not do since")
        schedd = next((s for s in _pool.load()["schedds"].values() if s["address"] == self._addr),
                      None)
        if schedd is None:
            raise HTCondorException(f"Failed to connect to schedd at {self._addr}")
        try:
            found = [ad for ad in schedd.get("history", [])
                     if _pool.matches(ad, str(constraint or "True"))]
        except ValueError as err:
            raise HTCondorException(str(err)) from None
        return [_project(ad, projection) for ad in found][:match if match >= 0 else None]

    def act(self, action: JobAction, job_spec: Union[List[str], str, int],
            reason: str = None) -> ClassAd:
        """Remove acts as condor_rm does on a running job: JobStatus 3 with the reason."""
        if not isinstance(action, JobAction):
            raise TypeError("action must be a JobAction")
        if action != JobAction.Remove:
            raise HTCondorException(f"stand-in schedd does not do {action.name}")
        specs = [job_spec] if isinstance(job_spec, (str, int)) else list(job_spec)
        wanted = {str(spec) if "." in str(spec) else f"{spec}.0" for spec in specs}
        changed = 0
        with _pool.editing() as state:
            schedd = next((s for s in state["schedds"].values() if s["address"] == self._addr),
                          None)
            if schedd is None:
                raise HTCondorException(f"Failed to connect to schedd at {self._addr}")
            for ad in schedd["jobs"]:
                if f"{ad['ClusterId']}.{ad['ProcId']}" in wanted:
                    ad.update(JobStatus=3, RemoveReason=reason or "Python-initiated action")
                    changed += 1
        return ClassAd({"TotalSuccess": changed})


    def submit(self, description: Submit, count: int = 0, spool: bool = False,
               itemdata: Optional[Union[Iterator[str], Iterator[dict]]] = DefaultItemData,
               ) -> SubmitResult:
        """One job (the stand-in refuses counts, spooling and item data), idle in this schedd."""
        if not isinstance(description, Submit):
            raise TypeError("description must be a Submit")   # real: no getQArgs() otherwise
        if count not in (0, 1) or spool or itemdata not in (DefaultItemData, None):
            raise HTCondorException("stand-in schedd submits one job, without spooling")
        with _pool.editing() as state:
            schedd = next((s for s in state["schedds"].values() if s["address"] == self._addr),
                          None)
            if schedd is None:
                raise HTCondorException(f"Failed to connect to schedd at {self._addr}")
            cluster = 1 + max((ad["ClusterId"] for ad in schedd["jobs"] + schedd.get("history", [])),
                              default=0)   # cluster ids are never reused
            ad = job_ad_from(description, cluster)
            schedd["jobs"].append(ad)
        return SubmitResult(cluster, 0, 1, ClassAd(ad))


def _project(ad: dict, projection: List[str]) -> ClassAd:
    """Only the projected attributes (the real schedd may add a few; returning fewer catches a
    projection that forgets something the backend reads)."""
    if not projection:
        return ClassAd(ad)
    wanted = {name.lower() for name in projection}
    return ClassAd({key: value for key, value in ad.items() if key.lower() in wanted})
