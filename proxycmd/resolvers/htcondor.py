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

from starter.condor_publish import (ADDRESS_ATTR, NO_TERMINAL_ATTR, OWNER_KEY_ATTR,
                                    STARTER_KEY_ATTR, USER_ATTR)
from starter.jobad import quote
from starter.jobid import JobId
from starter.keys import normalize
from starter.names import BadName, is_login_name, login_name, printable

from ..errors import JobNotFound, JobNotRunning, NotAuthorized, ProxyError
from ..ec2jobs import EC2_ATTRIBUTES, is_ec2_job, resolve_ec2_job
from ..ec2jobs import login_user as ec2_login_user
from ..model import JobEndpoint, JobSummary
from . import BaseResolver
from .htcondor_access import authenticated_user, authorize, job_owner

PROJECTION = sorted({"ClusterId", "ProcId", "Owner", "User", "JobStatus", "HoldReason",
                     "JobCurrentStartDate", "EnteredCurrentStatus", "Cmd", "Arguments", "Args",
                     OWNER_KEY_ATTR, ADDRESS_ATTR, STARTER_KEY_ATTR, USER_ATTR, NO_TERMINAL_ATTR,
                     *EC2_ATTRIBUTES})
RUNNING = 2
MAX_LISTED_ARGS = 100     # a listing line shows this many of a job's arguments at most
# JobStatus -> (state name for JobNotRunning, how the one-line error says it)
_NOT_RUNNING = {
    1: ("idle", "is not running yet (idle in the queue)"),
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
        if job.node is not None:
            raise ProxyError(f"job {job}: nodes of parallel-universe jobs are not supported yet")
        name, ad = self.find_job(job)
        if not authorize(job, ad, self.htcondor2.param) and is_ec2_job(ad):
            raise NotAuthorized(f"job {job} is an EC2 job of {printable(job_owner(ad), 80)}: "
                                "condor-job-proxy uses the key pair and credential files an "
                                "EC2 job's ad names only for your own jobs")
        return endpoint_for(job, ad)._replace(schedd=name, pool=self.pool)

    def job_ad(self, job: JobId) -> dict:
        """The job's ad from the first schedd that has it (schedds in configured order)."""
        return self.find_job(job)[1]

    def find_job(self, job: JobId) -> tuple[str | None, dict]:
        """(the schedd's name, the job's ad) from the first schedd that has the job."""
        constraint = f"ClusterId == {job.cluster} && ProcId == {job.proc}"
        for name in self.schedd_names:
            ads = self._query(name, constraint)
            if ads:
                return name, ads[0]
        where = ", ".join(self._label(name) for name in self.schedd_names)
        raise JobNotFound(f"job {job} is not in the queue of {where}")

    def remove(self, job: JobId, reason: str) -> None:
        """condor_rm through the schedd that holds the job."""
        name, _ = self.find_job(job)
        htcondor2 = self.htcondor2
        try:
            self._schedd(name).act(htcondor2.JobAction.Remove, f"{job.cluster}.{job.proc}",
                                   reason=reason)
        except htcondor2.HTCondorException as err:
            raise ProxyError(f"cannot remove job {job} from {self._label(name)}: {err}") from None

    def submit(self, description: dict[str, str]) -> JobId:
        """condor_submit of one job to the first configured schedd (interactive jobs)."""
        htcondor2 = self.htcondor2
        name = self.schedd_names[0]
        try:
            result = self._schedd(name).submit(htcondor2.Submit(description))
        except htcondor2.HTCondorException as err:
            raise ProxyError(f"cannot submit to {self._label(name)}: {err}") from None
        return JobId(result.cluster(), result.first_proc())

    def query_first_schedd(self, constraint: str) -> list:
        """Job ads (the usual projection) from the schedd that ``submit`` uses."""
        return self._query(self.schedd_names[0], constraint)

    def why_idle(self, job: JobId) -> str:
        """Why the job does not run yet, as far as the pool can say (condor_q -better-analyze)."""
        from .htcondor_analysis import why_idle
        return why_idle(self, job)

    def list_jobs(self) -> list[JobSummary]:
        """This user's running jobs on every configured schedd."""
        constraint = f"Owner == {quote(authenticated_user())} && JobStatus == {RUNNING}"
        return [summary(ad) for name in self.schedd_names for ad in self._query(name, constraint)]

    def _query(self, name: str | None, constraint: str) -> list:
        return self.query_schedd(name, constraint, PROJECTION)

    def query_schedd(self, name: str | None, constraint: str, projection: list[str]) -> list:
        htcondor2 = self.htcondor2
        try:
            return self._schedd(name).query(constraint=constraint, projection=projection)
        except htcondor2.HTCondorException as err:
            raise ProxyError(f"cannot query {self._label(name)}: {err}") from None

    def _schedd(self, name: str | None):
        htcondor2 = self.htcondor2
        if name is None and self.pool is None:
            return htcondor2.Schedd()
        try:
            location = htcondor2.Collector(self.pool).locate(htcondor2.DaemonType.Schedd, name)
        except htcondor2.HTCondorException as err:
            raise ProxyError(f"cannot locate {self._label(name)}: {err}") from None
        if location is None:
            raise ProxyError(f"{self._label(name)} is not known to the collector")
        return htcondor2.Schedd(location)

    def _label(self, name: str | None) -> str:
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
    state, wording = _NOT_RUNNING.get(status, (printable(status, 20),
                                               f"is not running (JobStatus {printable(status, 20)})"))
    raise JobNotRunning(f"job {job} {wording}", state, transport=transport)


def summary(ad) -> JobSummary:
    """One line of ``jobs`` and one Host block of the generated config: names that pass
    LOGIN_NAME (else the owner, else "?"), printable words, a checked address."""
    args = _text(ad, "Arguments") or _text(ad, "Args")
    owner = _text(ad, "Owner") if is_login_name(_text(ad, "Owner")) else "?"
    published = _text(ad, USER_ATTR)
    # A published name that is no login name would break the include; connect refuses the job.
    user = owner if published and not is_login_name(published) else _login_user(ad)
    status = ad.get("JobStatus")
    started = ad.get("JobCurrentStartDate") or ad.get("EnteredCurrentStatus") or 0
    return JobSummary(job=JobId(int(ad.get("ClusterId")), int(ad.get("ProcId"))),
                      owner=owner, user=user,
                      state="running" if status == RUNNING else printable(status, 20),
                      start_time=float(started) if isinstance(started, (int, float)) else 0.0,
                      command=tuple(printable(word, 200) for word in
                                    (_text(ad, "Cmd"), *args.split()[:MAX_LISTED_ARGS])),
                      address=_published_address(ad))


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
    return JobEndpoint(job=job, user=_login_user(ad), transport="starter", address=address,
                       starter_key=starter_key)


def _ec2_endpoint(job: JobId, ad) -> JobEndpoint:
    from starter import paths
    return resolve_ec2_job(ad, job, paths.settings())


def _native_endpoint(job: JobId, ad) -> JobEndpoint:
    """Through the pool's own ssh-to-job; the login user is known once the pool has told us
    (for this job, or for the pool: where its sshd takes only the job user's real name)."""
    from .. import state
    user = state.login_user(job)
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


def _login_user(ad) -> str:
    """Published by our starter; for an EC2 job, the instance's login user (as connect chooses
    it); else learnt from the pool's ssh-to-job (for this job, else for the pool), else the
    owner (a pool's sshd takes any name by default, so the owner's is as good as any). A name
    that passes LOGIN_NAME, else ProxyError: it goes into ssh_config and ssh's command line."""
    job = JobId(int(ad.get("ClusterId")), int(ad.get("ProcId")))
    if _text(ad, USER_ATTR):
        return _checked_name(job, _text(ad, USER_ATTR), "the login user its ad publishes")
    if is_ec2_job(ad):
        from starter import paths
        return ec2_login_user(ad, job, paths.settings())
    from .. import state
    remembered = state.login_user(job)
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
