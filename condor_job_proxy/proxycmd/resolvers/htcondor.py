"""Jobs in an HTCondor pool, found through the schedd(s) with the ``htcondor2`` bindings.

A job's ad is fetched once (a constraint on its id, a projection of only what we read), the
job is checked to be the user's own or open to them as a queue super user (htcondor_access),
and only then dispatched by what it shows: our starter's published address, an EC2 grid job,
or a job that runs without our starter. Every value of the ad that goes on is parsed here, at
the boundary: login names pass LOGIN_NAME, the starter's address is an IP address and port,
its key one public key, and text for a terminal (hold reasons, commands) is made printable.
The bindings are imported here only, never on the local path.
"""
from __future__ import annotations

from typing import Callable

from condor_job_proxy.common.jobad import (ADDRESS_ATTR, HOST_KEY_ATTR, NO_TERMINAL_ATTR,
                                           OWNER_KEY_ATTR, PARALLEL_UNIVERSE, STARTER_ATTRS,
                                           STARTER_KEY_ATTR, USER_ATTR, node_attribute, quote)
from condor_job_proxy.common.jobid import JobId
from condor_job_proxy.common.keys import normalize
from condor_job_proxy.common.names import BadName, is_login_name, login_name, printable

from ..errors import JobNotFound, JobNotRunning, NotAuthorized, ProxyError
from .ec2 import EC2_ATTRIBUTES, is_ec2_job, resolve_ec2_job
from .ec2 import login_user as ec2_login_user
from ..model import JobEndpoint, JobSummary
from . import BaseResolver
from .htcondor_access import authenticated_user, authorize, job_owner
from .htcondor_containers import CONTAINER_ATTRIBUTES

PROJECTION = sorted({"ClusterId", "ProcId", "Owner", "User", "JobStatus", "HoldReason",
                     "JobUniverse", "RemoteHosts", "MaxHosts",
                     "JobCurrentStartDate", "EnteredCurrentStatus", "Cmd", "Arguments", "Args",
                     OWNER_KEY_ATTR, ADDRESS_ATTR, STARTER_KEY_ATTR, USER_ATTR, NO_TERMINAL_ATTR,
                     HOST_KEY_ATTR,
                     *EC2_ATTRIBUTES, *CONTAINER_ATTRIBUTES})
RUNNING = 2
MAX_LISTED_ARGS = 100     # a listing line shows this many of a job's arguments at most
MAX_NODES = 1024          # nodes of one parallel job read from its ad at most
# JobStatus -> (state name, as listings and JobNotRunning say it; how the one-line error says it)
_STATES = {
    1: ("idle", "is not running yet (idle in the queue)"),
    2: ("running", "runs"),
    3: ("removed", "was removed"),
    4: ("completed", "has completed"),
    6: ("transferring_output", "has finished running and is transferring its output"),
    7: ("suspended", "is suspended; try again when it resumes"),
}


class Resolver(BaseResolver):
    """HTCondor schedds, through the htcondor2 bindings."""
    name = "htcondor"

    def __init__(self, schedds: list[str] | None = None, pool: str | None = None) -> None:
        try:
            import htcondor2
        except ImportError:
            raise ProxyError("the HTCondor Python bindings are not installed "
                             "(pip install 'condor-job-proxy[htcondor]')") from None
        self.htcondor2 = htcondor2
        self.schedd_names: list[str | None] = list(schedds or [None])   # None: the local schedd
        self.pool = pool

    def resolve(self, job: JobId) -> JobEndpoint:
        name, ad = self.find_job(job, node_projection([job.node or 0]))
        if not authorize(job, ad, self.htcondor2.param) and is_ec2_job(ad):
            raise NotAuthorized(f"job {job} is an EC2 job of {printable(job_owner(ad), 80)}: "
                                "condor-job-proxy uses the key pair and credential files an "
                                "EC2 job's ad names only for your own jobs")
        return endpoint_for(*node_of(job, ad))._replace(schedd=name, pool=self.pool)

    def job_ad(self, job: JobId) -> dict:
        """The job's ad from the first schedd that has it (schedds in configured order)."""
        return self.find_job(job)[1]

    def find_job(self, job: JobId, extra: list[str] = ()) -> tuple[str | None, dict]:
        """(the schedd's name, the job's ad) from the first schedd that has the job; ``extra``:
        attributes to fetch besides the usual projection (a parallel job's nodes')."""
        constraint = f"ClusterId == {job.cluster} && ProcId == {job.proc}"
        for name in self.schedd_names:
            ads = self.query_schedd(name, constraint, sorted({*PROJECTION, *extra}))
            if ads:
                return name, ads[0]
        where = ", ".join(self.schedd_label(name) for name in self.schedd_names)
        raise JobNotFound(f"job {job} is not in the queue of {where}")

    def remove(self, job: JobId, reason: str) -> None:
        """condor_rm through the schedd that holds the job."""
        name, _ = self.find_job(job)
        htcondor2 = self.htcondor2
        try:
            self._schedd(name).act(htcondor2.JobAction.Remove, f"{job.cluster}.{job.proc}",
                                   reason=reason)
        except htcondor2.HTCondorException as err:
            raise ProxyError(f"cannot remove job {job} from {self.schedd_label(name)}: "
                             f"{err}") from None

    def submit(self, description: dict[str, str]) -> JobId:
        """condor_submit of one job to the first configured schedd (interactive jobs)."""
        htcondor2 = self.htcondor2
        name = self.schedd_names[0]
        try:
            result = self._schedd(name).submit(htcondor2.Submit(description))
        except htcondor2.HTCondorException as err:
            raise ProxyError(f"cannot submit to {self.schedd_label(name)}: {err}") from None
        return JobId(result.cluster(), result.first_proc())

    def query_first_schedd(self, constraint: str) -> list:
        """Job ads (the usual projection) from the schedd that ``submit`` uses."""
        return self._query(self.schedd_names[0], constraint)

    def why_idle(self, job: JobId) -> str:
        """Why the job does not run yet, as far as the pool can say (condor_q -better-analyze)."""
        from .htcondor_analysis import JOB_PROJECTION, SLOT_PROJECTION, analyse
        constraint = f"ClusterId == {job.cluster} && ProcId == {job.proc}"
        for name in self.schedd_names:
            ads = self.query_schedd(name, constraint, JOB_PROJECTION)
            if not ads:
                continue
            idle = ads[0].get("JobStatus") == 1
            return analyse(ads[0], self._slots(SLOT_PROJECTION)) if idle else ""
        return ""

    def _slots(self, projection: list[str]) -> list:
        """The pool's slot ads, as the collector has them."""
        try:
            return self.htcondor2.Collector(self.pool).query(self.htcondor2.AdType.Startd,
                                                             projection=projection)
        except self.htcondor2.HTCondorException as err:
            raise ProxyError(f"cannot query the collector: {err}") from None

    def list_jobs(self) -> list[JobSummary]:
        """This user's jobs in every state on every configured schedd, by id (a tiny condor_q);
        a parallel job once per node, as each node is reached on its own."""
        constraint = f"Owner == {quote(authenticated_user())}"
        listed = []
        for name in self.schedd_names:
            for ad in self._query(name, constraint):
                if is_parallel(ad):
                    ad = self._with_nodes(name, ad)
                listed += summaries(ad)
        return sorted(listed, key=lambda job: (*job.job[:2], -1 if job.job.node is None
                                               else job.job.node))

    def _with_nodes(self, name: str | None, ad) -> dict:
        """A parallel job's ad again, with what our starter published for each of its nodes."""
        constraint = f"ClusterId == {ad.get('ClusterId')} && ProcId == {ad.get('ProcId')}"
        projection = sorted({*PROJECTION, *node_projection(range(node_count(ad)))})
        found = self.query_schedd(name, constraint, projection)
        return found[0] if found else ad

    def _query(self, name: str | None, constraint: str) -> list:
        return self.query_schedd(name, constraint, PROJECTION)

    def query_schedd(self, name: str | None, constraint: str, projection: list[str]) -> list:
        htcondor2 = self.htcondor2
        try:
            return self._schedd(name).query(constraint=constraint, projection=projection)
        except htcondor2.HTCondorException as err:
            raise ProxyError(f"cannot query {self.schedd_label(name)}: {err}") from None

    def history(self, constraint: str, projection: list[str]) -> list:
        """Ads of jobs that have left the queue of the schedd ``submit`` uses, newest first
        (condor_history): how a job we waited for ended."""
        return self.schedd_history(self.schedd_names[0], constraint, projection)

    def schedd_history(self, name: str | None, constraint: str, projection: list[str]) -> list:
        """The newest ad matching ``constraint`` in the history of schedd ``name``."""
        htcondor2 = self.htcondor2
        try:
            return self._schedd(name).history(constraint=constraint, projection=projection,
                                              match=1)
        except htcondor2.HTCondorException as err:
            raise ProxyError(f"cannot read the history of {self.schedd_label(name)}: "
                             f"{err}") from None

    def _schedd(self, name: str | None):
        htcondor2 = self.htcondor2
        if name is None and self.pool is None:
            return htcondor2.Schedd()
        try:
            location = htcondor2.Collector(self.pool).locate(htcondor2.DaemonType.Schedd, name)
        except htcondor2.HTCondorException as err:
            raise ProxyError(f"cannot locate {self.schedd_label(name)}: {err}") from None
        if location is None:
            raise ProxyError(f"{self.schedd_label(name)} is not known to the collector")
        return htcondor2.Schedd(location)

    def schedd_label(self, name: str | None) -> str:
        """A schedd as messages name it: "schedd NAME of pool POOL", "the local schedd"."""
        schedd = f"schedd {name}" if name else "the local schedd"
        return f"{schedd} of pool {self.pool}" if self.pool else schedd


def endpoint_for(job: JobId, ad) -> JobEndpoint:
    """How to reach a running job, by what its ad shows (first matching kind wins)."""
    require_running(job, ad)
    for matches, endpoint in ENDPOINT_KINDS:
        if matches(ad):
            return endpoint(job, ad)
    raise AssertionError("the last endpoint kind matches every ad")


def require_running(job: JobId, ad) -> None:
    """JobNotRunning, naming the transport the job will need, unless the job runs."""
    status = ad.get("JobStatus")
    if status == RUNNING:
        return
    transport = transport_choice(ad)[0]
    if status == 5:
        reason = printable(_text(ad, "HoldReason") or "no reason given")
        raise JobNotRunning(f"job {job} is held: {reason}", "held", hold_reason=reason,
                            transport=transport)
    state, wording = _STATES.get(status, (printable(status, 20),
                                          f"is not running (JobStatus {printable(status, 20)})"))
    raise JobNotRunning(f"job {job} {wording}", state, transport=transport)


def summaries(ad) -> list[JobSummary]:
    """The job's lines of ``jobs``: one, or one per node of a parallel job (each its own Host
    block of the generated config, since each is reached on its own)."""
    if not is_parallel(ad):
        return [summary(ad)]
    job = _ad_job(ad)
    return [summary(node_ad(ad, node), JobId(job.cluster, job.proc, node))
            for node in range(node_count(ad))]


def summary(ad, job: JobId | None = None) -> JobSummary:
    """One line of ``jobs`` and one Host block of the generated config: names that pass
    LOGIN_NAME (else the owner, else "?"), printable words, a checked address, the state by
    name (a held job's reason with it)."""
    job = job or _ad_job(ad)
    args = _text(ad, "Arguments") or _text(ad, "Args")
    owner = _text(ad, "Owner") if is_login_name(_text(ad, "Owner")) else "?"
    published = _text(ad, USER_ATTR)
    # A published name that is no login name would break the include; connect refuses the job.
    user = owner if published and not is_login_name(published) else _login_user(ad, job)
    status = ad.get("JobStatus")
    started = ad.get("JobCurrentStartDate") or ad.get("EnteredCurrentStatus") or 0
    reason = printable(_text(ad, "HoldReason") or "no reason given", 200) if status == 5 else ""
    return JobSummary(job=job, owner=owner, user=user, state=_state_name(status),
                      start_time=float(started) if isinstance(started, (int, float)) else 0.0,
                      command=tuple(printable(word, 200) for word in
                                    (_text(ad, "Cmd"), *args.split()[:MAX_LISTED_ARGS])),
                      address=_published_address(ad), hold_reason=reason)


def _state_name(status: object) -> str:
    if status == 5:
        return "held"
    return _STATES.get(status, (printable(status, 20),))[0]


# --- parallel-universe jobs: one ad, nodes by index ---------------------------------------------

class NodeError(ProxyError):
    """A job id that names no node of the job: the ssh wording, HTCondor's tool's wording
    (``htcondor_words``) and the transport that serves the job (the wrapper hands native jobs
    to HTCondor's own tool, which says it itself)."""

    def __init__(self, message: str, htcondor_words: str, transport: str) -> None:
        super().__init__(message)
        self.htcondor_words = htcondor_words
        self.transport = transport


def is_parallel(ad) -> bool:
    return ad.get("JobUniverse") == PARALLEL_UNIVERSE


def node_count(ad) -> int:
    """A parallel job's nodes: once it runs, one per slot in RemoteHosts (the schedd's own
    index for ``condor_ssh_to_job N.P.K``); before, the machine_count asked for (MaxHosts)."""
    hosts = _text(ad, "RemoteHosts")
    wanted = ad.get("MaxHosts")
    if hosts:
        count = len(hosts.split(","))
    else:
        count = wanted if isinstance(wanted, int) and not isinstance(wanted, bool) else 1
    return max(1, min(count, MAX_NODES))


def node_projection(nodes) -> list[str]:
    """The attributes our starters publish for ``nodes`` of a parallel job."""
    return [node_attribute(name, node) for node in nodes for name in STARTER_ATTRS]


def node_ad(ad, node: int) -> dict:
    """A parallel job's ad as node ``node`` sees it: our starter's attributes are that node's
    (``CondorJobProxyAddress_K`` read as ``CondorJobProxyAddress``)."""
    ours = {name.lower() for name in STARTER_ATTRS}
    view = {key: value for key, value in ad.items() if key.lower() not in ours}
    for name in STARTER_ATTRS:
        value = ad.get(node_attribute(name, node))
        if value is not None:
            view[name] = value
    return view


def node_of(job: JobId, ad) -> tuple[JobId, dict]:
    """The job as its transport names it, and its ad as that node sees it. Nodes are numbered
    0..n-1 in a parallel job (a job of one node takes N.P as N.P.0, as the schedd does); any
    other job takes N.P.0 as N.P, as HTCondor's tool does."""
    base = JobId(job.cluster, job.proc)
    if not is_parallel(ad):
        if job.node:
            raise NodeError(f"job {base} is no parallel-universe job: it has no node {job.node} "
                            f"(its host name is {base.host()})", "", transport_choice(ad)[0])
        return base, ad
    count = node_count(ad)
    node = 0 if job.node is None and count == 1 else job.node
    if ad.get("JobStatus") == RUNNING and (node is None or node >= count):
        first, last = (JobId(job.cluster, job.proc, k).host() for k in (0, count - 1))
        raise NodeError(f"job {base} is a parallel job of {count} nodes: name one, "
                        f"{first} to {last}",
                        f"This is a parallel job.  Please specify job {base}.X where X is an "
                        f"integer from 0 to {count - 1}.", transport_choice(ad)[0])
    return JobId(job.cluster, job.proc, node or 0), node_ad(ad, node or 0)


def _runs_our_starter(ad) -> bool:
    return bool(_text(ad, OWNER_KEY_ATTR) or _text(ad, ADDRESS_ATTR))


def _starter_endpoint(job: JobId, ad) -> JobEndpoint:
    address, key = _text(ad, ADDRESS_ATTR), _text(ad, STARTER_KEY_ATTR)
    if not address or not key:
        # Like HTCondor's own early-start window: treated as "not running yet", so waiting helps.
        raise JobNotRunning(f"job {job} runs condor-job-proxy's starter, which has not published "
                         "its address yet; try again in a few seconds (is +WantIOProxy = true "
                         "in the submit file?)", "starting")
    if _published_address(ad) != address:
        raise ProxyError(f"job {job}: the starter address its ad publishes, "
                         f"{printable(repr(address), 80)}, is not an IP address and port")
    starter_key = normalize(key) if "\n" not in key else None
    if starter_key is None:
        raise ProxyError(f"job {job}: the starter key its ad publishes is not one public key")
    host_key = _text(ad, HOST_KEY_ATTR)   # a starter that predates it publishes none
    host_key = normalize(host_key) if "\n" not in host_key else None
    return JobEndpoint(job=job, user=_login_user(ad, job), transport="starter", address=address,
                       starter_key=starter_key, host_keys=(host_key,) if host_key else ())


def _ec2_endpoint(job: JobId, ad) -> JobEndpoint:
    from condor_job_proxy.common import paths
    return resolve_ec2_job(ad, job, paths.settings().ec2)


def _native_endpoint(job: JobId, ad) -> JobEndpoint:
    """Through the pool's own ssh-to-job; the login user is known once the pool has told us
    (for this job, or for the pool: where its sshd takes only the job user's real name)."""
    from .. import client_files
    user = client_files.login_user(job)
    return JobEndpoint(job=job, user=user if is_login_name(user) else "",
                       transport="htcondor-native", address="", starter_key="")


def transport_choice(ad) -> tuple[str, str]:
    """Which transport a job's ad leads to, and the attributes that decided it (for doctor)."""
    if _runs_our_starter(ad):
        seen = [name for name in (OWNER_KEY_ATTR, ADDRESS_ATTR) if _text(ad, name)]
        return "starter", f"the job ad has {' and '.join(seen)}: the job runs our starter"
    if is_ec2_job(ad):
        return "ec2", (f"the job ad has JobUniverse = 9 (grid) and GridResource = "
                       f"{printable(repr(_text(ad, 'GridResource')), 200)}")
    return "htcondor-native", (f"the job ad has no {OWNER_KEY_ATTR} or {ADDRESS_ATTR} and is no "
                               "EC2 grid job: the pool's own condor_ssh_to_job")


ENDPOINT_KINDS: list[tuple[Callable[[object], bool], Callable[[JobId, object], JobEndpoint]]] = [
    (_runs_our_starter, _starter_endpoint),
    (is_ec2_job, _ec2_endpoint),
    (lambda ad: True, _native_endpoint),
]


def _ad_job(ad) -> JobId:
    return JobId(int(ad.get("ClusterId")), int(ad.get("ProcId")))


def _login_user(ad, job: JobId | None = None) -> str:
    """Published by our starter; for an EC2 job, the instance's login user (as connect chooses
    it); else learnt from the pool's ssh-to-job (for this job, else for the pool), else the
    owner (a pool's sshd takes any name by default, so the owner's is as good as any). A name
    that passes LOGIN_NAME, else ProxyError: it goes into ssh_config and ssh's command line."""
    job = job or _ad_job(ad)
    if _text(ad, USER_ATTR):
        return _checked_name(job, _text(ad, USER_ATTR), "the login user its ad publishes")
    if is_ec2_job(ad):
        from condor_job_proxy.common import paths
        return ec2_login_user(ad, job, paths.settings().ec2)
    from .. import client_files
    remembered = client_files.login_user(job)
    if is_login_name(remembered):
        return remembered
    return _checked_name(job, _text(ad, "Owner"), "the owner its ad names")


def _checked_name(job: JobId, value: str, what: str) -> str:
    try:
        return login_name(value, f"job {job}: {what},")
    except BadName as err:
        raise ProxyError(str(err)) from None


def _published_address(ad) -> str:
    """Our starter's published ``IP:port`` (``[IPv6]:port``), or "" when it is not one."""
    import ipaddress
    import re
    host, _, port = _text(ad, ADDRESS_ATTR).rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    try:
        ip = ipaddress.ip_address(host[1:-1] if bracketed else host)
    except ValueError:
        return ""
    if bracketed != (ip.version == 6) or not re.fullmatch(r"[1-9][0-9]{0,4}", port) \
            or int(port) > 65535:
        return ""
    return f"{host}:{port}"


def _text(ad, name: str) -> str:
    """A string attribute, '' when missing or not a string (undefined, an expression)."""
    value = ad.get(name)
    return value if isinstance(value, str) else ""


HISTORY_PROJECTION = ["ClusterId", "ProcId", "Owner", "User", "JobStatus", "ExitCode",
                      "ExitBySignal", "ExitSignal", "RemoveReason", "CompletionDate",
                      "EnteredCurrentStatus"]


def history_ad(resolver: Resolver, job: JobId) -> dict | None:
    """The job's last ad in a configured schedd's history (a job that has left the queue), or
    None: what doctor says of a job the queue no longer holds."""
    constraint = f"ClusterId == {job.cluster} && ProcId == {job.proc}"
    for name in resolver.schedd_names:
        for ad in resolver.schedd_history(name, constraint, HISTORY_PROJECTION):
            return ad
    return None


def how_it_left(job: JobId, ad) -> str:
    """How a job in the history ended, in one line: "completed with exit status N" (or killed
    by a signal), "removed (RemoveReason, which names who)"."""
    status = ad.get("JobStatus")
    if status == 3:
        reason = _text(ad, "RemoveReason")
        return f"job {job} was removed ({printable(reason, 300) if reason else 'no reason given'})"
    if status == 4:
        if ad.get("ExitBySignal") is True:
            return f"job {job} has completed: killed by signal {printable(ad.get('ExitSignal'), 20)}"
        return f"job {job} has completed with exit status {printable(ad.get('ExitCode'), 20)}"
    return f"job {job} has left the queue (JobStatus {printable(status, 20)})"
