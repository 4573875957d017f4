"""``condor-job-proxy doctor JOB``: which resolver and transport a job would use, and why.

Reads the same job ad the ProxyCommand would (one query, the same projection) and reports the
attributes that decided the transport, then checks what a connection needs on this machine.
It also takes the authorization step a connect takes, without opening a session: a pool's
owner/super-user rule, and for our starter its hello/challenge (the starter answers a hello
with a challenge only for a key it lets in, else with the refusal a connect gets; no auth
follows, so nothing opens). What only a session shows is left out: the login itself (the
job's sshd, its user's shell beyond what the starter checks), and for the pool's own
condor_ssh_to_job and EC2 jobs, anything past the schedd's rule. Its exit status says whether
a connect would get in now.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import TYPE_CHECKING, Callable, NamedTuple

from condor_job_proxy.proxycmd.errors import JobNotFound, ProxyError
from condor_job_proxy.common import paths
from condor_job_proxy.common.jobad import NO_TERMINAL_ATTR
from condor_job_proxy.common.jobid import BadJobId, JobId, parse_host, parse_job_id
from condor_job_proxy.common.names import printable
from condor_job_proxy.common.queue import UntrustedRecord

if TYPE_CHECKING:
    from condor_job_proxy.proxycmd.via.hop import Hop

IDLE = 1   # HTCondor's JobStatus of a job waiting for a slot


class Findings(NamedTuple):
    """doctor's report: its lines, and whether a connect to the job would get in now."""
    lines: list[str]
    reachable: bool


def report(text: str, queue: str | None) -> Findings:
    """The report's lines; what records and ads say is made printable (no control characters).
    ``reachable`` is false whenever a connect would be refused or fail now."""
    job = _job(text)
    from condor_job_proxy.proxycmd.resolvers import default_resolver
    resolver = default_resolver(queue)
    lines, transport, reachable = _describe(job, resolver)
    checks, tool_found = _checks(transport)
    return Findings([printable(line, 2000) for line in lines + checks], reachable and tool_found)


def report_via(text: str, hop: Hop) -> Findings:
    """A laptop's report (setup --via): the access point's doctor on the job, line by line,
    then this machine's checks. Reachable when the access point's doctor says so."""
    from condor_job_proxy.proxycmd.via import hop as hops
    job = _job(text)
    lines = [f"job {job}: through the access point {hop.target} (setup --via)"]
    done = hops.run(hop, ["doctor", str(job)])
    said = done.stdout.decode(errors="replace").splitlines()
    if said:
        lines += [f"{hop.target}: {line}" for line in said]
    else:
        reason = hops.ssh_reason(done.stderr) or f"ssh exit status {done.returncode}"
        lines.append(f"state: not reachable now: cannot ask {hop.target}: {reason}")
    checks, _ = _checks("via")
    return Findings([printable(line, 2000) for line in lines + checks], done.returncode == 0)


def _job(text: str) -> JobId:
    try:
        return parse_host(text) if not text[:1].isdigit() else parse_job_id(text)
    except BadJobId as err:
        raise ProxyError(str(err)) from None


def _describe(job: JobId, resolver) -> tuple[list[str], str, bool]:
    if resolver.queue is not None:
        lines = [f"job {job}: resolver local (queue {resolver.queue.directory})",
                 "transport: starter (local queue records always name our starter)"]
        state, reachable = _state(lambda: _local_access(resolver, job))
        return (lines + [state] + _local_owner(job, resolver) + _local_terminals(job, resolver),
                "starter", reachable)
    return _describe_pool(job, resolver)


def _describe_pool(job: JobId, resolver) -> tuple[list[str], str, bool]:
    from condor_job_proxy.proxycmd.resolvers import htcondor
    where = ", ".join(resolver.schedd_label(name) for name in resolver.schedd_names)
    lines = [f"job {job}: resolver htcondor ({where})"]
    try:
        schedd, ad = resolver.find_job(job)
    except JobNotFound as err:
        return lines + [f"state: {_left_queue(resolver, job, err)}"], "", False
    except ProxyError as err:
        return lines + [f"state: {err}"], "", False
    seen = " ".join(f"{name}={ad.get(name)!r}" for name in htcondor.PROJECTION if name in ad
                    and name not in ("Cmd", "Arguments", "Args"))
    transport, why = htcondor.transport_choice(ad)
    lines += [f"job ad from {resolver.schedd_label(schedd)}: {seen}",
              f"transport: {transport} ({why})"]
    lines += _pool_container(ad, transport)
    state, reachable = _state(lambda: _pool_access(resolver, job, ad, transport))
    lines.append(state)
    if ad.get("JobStatus") == IDLE:   # the analysis the waiting line shows
        lines.append(f"why idle: {resolver.why_idle(job) or 'the pool does not say'}")
    if transport == "starter":   # our starter publishes the attribute only where ptys fail
        lines.append(_terminals(job, ad.get(NO_TERMINAL_ATTR)))
    return lines, transport, reachable


def _pool_container(ad, transport: str) -> list[str]:
    """For a container or docker universe job reached through the pool's own tool: what lands
    in the container and what beside it."""
    if transport != "htcondor-native":
        return []
    from condor_job_proxy.proxycmd.resolvers.htcondor_containers import container_line
    line = container_line(ad)
    return [line] if line else []


def _left_queue(resolver, job: JobId, err: ProxyError) -> str:
    """A job the queue no longer holds, as the schedd's history describes it."""
    from condor_job_proxy.proxycmd.resolvers import htcondor
    ad = htcondor.history_ad(resolver, job)
    if ad is None:
        return f"not reachable: {err}, nor in its history"
    return f"not reachable: it has left the queue: {htcondor.how_it_left(job, ad)}"


def _local_access(resolver, job: JobId) -> str:
    """What a connect to a local job would meet, up to the starter's authorization (asked
    within the resolver's PROBE_SECONDS: a neighbour's starter may stay silent on purpose)."""
    endpoint = resolver.check_entry(job)
    record = resolver.queue.read(job) or {}
    mine = record.get("owner_uid") == os.getuid()
    return "" if mine else f"{endpoint.user}'s job, whose starter was given your key"


def _local_owner(job: JobId, resolver) -> list[str]:
    """Whose job another account's is, and how to enter it on purpose (``ssh job-N`` as
    yourself is refused, and the include has no Host block for it)."""
    from condor_job_proxy.proxycmd.pipeline import enter_on_purpose
    try:
        record = resolver.queue.read(job) or {}
    except (UntrustedRecord, ValueError, OSError):
        return []
    if not record.get("owner") or record["owner_uid"] == os.getuid():
        return []
    return [f"owner: {record['owner']} (uid {record['owner_uid']}), not you: "
            f"{enter_on_purpose(record['owner'], job.host())}"]


def _pool_access(resolver, job: JobId, ad, transport: str) -> str:
    """The pool's owner/super-user rule, then all a connect does before its session (the job's
    state, an EC2 instance's, our starter's address), and for our starter, the starter's own
    word on your key; for the other transports, what only a session shows is left."""
    from condor_job_proxy.proxycmd.resolvers.htcondor_access import authorize
    own = authorize(job, ad, resolver.htcondor2.param)
    endpoint = resolver.resolve(job)
    if transport == "starter":   # the starter's hello/challenge: does it let your key in
        from condor_job_proxy.proxycmd.transports.starter import check_access
        check_access(endpoint, paths.user_key_path())
    return "" if own else "you are a queue super user of the pool"


def _local_terminals(job: JobId, resolver) -> list[str]:
    """What the job's starter found about terminals and the job's container; nothing if its
    record cannot be read (the state line has said why)."""
    try:
        record = resolver.queue.read(job) or {}
    except (UntrustedRecord, ValueError, OSError):
        return []
    if "no_terminal" not in record:
        return ["terminals: unknown (the job's starter does not say)"] if record else []
    return [_terminals(job, record["no_terminal"]), *_container(record)]


def _container(record: dict) -> list[str]:
    """Where the job's sessions land, as its starter found it (older starters do not say)."""
    if "container" not in record:
        return []
    where = record["container"] or "none: sessions land on this machine, beside the job"
    return [f"container: {printable(where)}"]


def _terminals(job: JobId, no_terminal: object) -> str:
    if no_terminal:
        return f"terminals: no: job {job} {no_terminal}"
    return "terminals: yes (ssh -t and interactive logins get one)"


def _state(check: Callable[[], str]) -> tuple[str, bool]:
    try:
        note = check()
    except ProxyError as err:
        return f"state: not reachable now: {err}", False
    return f"state: running, and you may enter it{f' ({note})' if note else ''}", True


def _checks(transport: str) -> tuple[list[str], bool]:
    """The checks' lines, and whether the tool a transport needs is there."""
    from condor_job_proxy.sshconfig import install, managed
    key = paths.user_key_path()
    include = install.include_file()
    included = str(include) in (managed.read(managed.user_ssh_config()) or "")
    checks = [("ssh", _version(["ssh", "-V"])),
              ("job-access key", str(key) if key.exists() else "missing (run: condor-job-proxy setup)"),
              ("generated include", str(include) if include.exists() else "missing (run: setup)"),
              ("Include in ~/.ssh/config", "yes" if included else "no (run: condor-job-proxy setup)"),
              ("shared connections", _sharing_state()),
              ("connect daemon", _daemon_state()),
              ("host CA (for asyncssh)", _host_ca_state())]
    if transport in ("starter", ""):
        checks.append(("sshd (for jobs on this machine)", _version(["sshd", "-V"], "/usr/sbin/sshd")))
    tool_found = True
    if transport == "htcondor-native":
        tool = _native_tool()
        tool_found = bool(tool)
        checks.append(("HTCondor's condor_ssh_to_job", tool or "missing: install HTCondor's "
                       "client tools or set htcondor_native.tool"))
    return [f"check {name}: {result}" for name, result in checks], tool_found


def _native_tool() -> str | None:
    """The tool the native transport runs: the configured one, else HTCondor's on PATH (never
    our own drop-in of the same name)."""
    from condor_job_proxy.proxycmd.ssh_to_job import htcondor_tool
    return paths.settings().htcondor_native.tool or htcondor_tool.find()


def _sharing_state() -> str:
    """Where ssh's shared connections live for this account, or why there are none."""
    from condor_job_proxy.sshconfig import control
    from condor_job_proxy.common.files import private_dir_problem
    if not paths.settings().control_master:
        return "off (control_master = false): every ssh makes its own connection"
    directory = control.control_dir(create=False)
    if directory is None:
        tmp = control.tmp_dir()
        return f"off: {private_dir_problem(tmp, create=False) or 'no short enough path'}"
    if control.needs_check(directory):
        return (f"in {directory} (no login runtime directory, and the state directory's path is "
                "too long for a socket: ssh checks it is yours alone before each use)")
    return f"in {directory}"


def _daemon_state() -> str:
    from condor_job_proxy.proxycmd.daemon.server import sockets
    from condor_job_proxy.sshconfig import install
    if not paths.settings().connect_daemon:
        return "off (connect_daemon = false): every ssh runs the full proxy"
    base = install.daemon_socket_base(create=False)
    if base is None:
        return ("off: no SO_PEERCRED here to check who connects, or no private directory "
                "gives a short enough socket path")
    running = sockets(base)
    state = ("listening at " + ", ".join(map(str, running)) if running
             else "not running (the next ssh starts it)")
    return f"{state}; {_spares()}"


def _host_ca_state() -> str:
    """Whether the proxy can certify our starters' host keys, and asyncssh find the CA."""
    from condor_job_proxy.proxycmd import client_files, hostca
    from condor_job_proxy.sshconfig.include import JOB_TOKEN
    from condor_job_proxy.common import sshsig
    try:
        from cryptography.hazmat.primitives.serialization import SSHCertificateBuilder  # noqa: F401
    except ImportError:
        return "off: certificates need cryptography 40 or later (OpenSSH is unaffected)"
    ca, trust = hostca.ca_path(), client_files.known_hosts_dir() / JOB_TOKEN
    if ca.exists() and sshsig.ed25519_private_key(str(ca)) is None:
        return f"{ca} is not an unencrypted ed25519 key (remove it, then run: config refresh)"
    if not ca.exists() or not trust.exists():
        return f"{ca} or {trust} missing (run: condor-job-proxy config refresh)"
    return f"{ca}, trusted in {trust}"


def _spares() -> str:
    seconds = paths.settings().spare_session_seconds
    if not seconds:
        return "no spare sessions (spare_session_seconds = 0)"
    return (f"a job connected to again without a shared connection gets a spare session, kept "
            f"{seconds} s (spare_session_seconds)")


def _version(argv: list[str], fallback: str | None = None) -> str:
    program = shutil.which(argv[0]) or fallback
    if not program or not os.access(program, os.X_OK):
        return f"missing: {argv[0]} not found"
    out = subprocess.run([program, *argv[1:]], capture_output=True, text=True)
    first = (out.stderr or out.stdout).strip().splitlines()
    return f"{program}: {first[0] if first else 'no version output'}"
