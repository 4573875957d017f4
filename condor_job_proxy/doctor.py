"""``condor-job-proxy doctor JOB``: which resolver and transport a job would use, and why.

Reads the same job ad the ProxyCommand would (one query, the same projection) and reports the
attributes that decided the transport, then checks what a connection needs on this machine.
"""
from __future__ import annotations

import os
import shutil
import subprocess

from proxycmd.errors import ProxyError
from starter import paths
from starter.condor_publish import NO_TERMINAL_ATTR
from starter.jobid import BadJobId, JobId, parse_host, parse_job_id
from starter.names import printable
from starter.queue import UntrustedRecord


def report(text: str, queue: str | None) -> list[str]:
    """The report's lines; what records and ads say is made printable (no control characters)."""
    job = _job(text)
    from proxycmd.resolvers import default_resolver
    resolver = default_resolver(queue)
    lines, transport = _describe(job, resolver)
    return [printable(line, 2000) for line in lines + _checks(transport)]


def _job(text: str) -> JobId:
    try:
        return parse_host(text) if not text[:1].isdigit() else parse_job_id(text)
    except BadJobId as err:
        raise ProxyError(str(err)) from None


def _describe(job: JobId, resolver) -> tuple[list[str], str]:
    if resolver.name == "local":
        lines = [f"job {job}: resolver local (queue {resolver.queue.directory})",
                 "transport: starter (local queue records always name our starter)",
                 _state(lambda: resolver.resolve(job))]
        return lines + _local_terminals(job, resolver), "starter"
    from proxycmd.resolvers import htcondor
    where = ", ".join(resolver._label(name) for name in resolver.schedd_names)
    lines = [f"job {job}: resolver htcondor ({where})"]
    try:
        schedd, ad = resolver.find_job(job)
    except ProxyError as err:
        return lines + [f"state: {err}"], ""
    seen = " ".join(f"{name}={ad.get(name)!r}" for name in htcondor.PROJECTION if name in ad
                    and name not in ("Cmd", "Arguments", "Args"))
    transport, why = htcondor.transport_choice(ad)
    lines += [f"job ad from {resolver._label(schedd)}: {seen}", f"transport: {transport} ({why})",
              _state(lambda: htcondor.require_running(job, ad))]
    if transport == "starter":   # our starter publishes the attribute only where ptys fail
        lines.append(_terminals(job, ad.get(NO_TERMINAL_ATTR)))
    return lines, transport


def _local_terminals(job: JobId, resolver) -> list[str]:
    """What the job's starter found about terminals; nothing if its record cannot be read
    (the state line has said why)."""
    try:
        record = resolver.queue.read(job) or {}
    except (UntrustedRecord, ValueError, OSError):
        return []
    if "no_terminal" not in record:
        return ["terminals: unknown (the job's starter does not say)"] if record else []
    return [_terminals(job, record["no_terminal"])]


def _terminals(job: JobId, no_terminal: object) -> str:
    if no_terminal:
        return f"terminals: no: job {job} {no_terminal}"
    return "terminals: yes (ssh -t and interactive logins get one)"


def _state(check) -> str:
    try:
        check()
    except ProxyError as err:
        return f"state: not reachable now: {err}"
    return "state: running"


def _checks(transport: str) -> list[str]:
    from sshconfig import install, managed
    key = paths.user_key_path()
    include = install.include_file()
    included = str(include) in (managed.read(managed.user_ssh_config()) or "")
    checks = [("ssh", _version(["ssh", "-V"])),
              ("job-access key", str(key) if key.exists() else "missing (run: condor-job-proxy setup)"),
              ("generated include", str(include) if include.exists() else "missing (run: setup)"),
              ("Include in ~/.ssh/config", "yes" if included else "no (run: condor-job-proxy setup)"),
              ("shared connections", _sharing_state()),
              ("connect daemon", _daemon_state())]
    if transport in ("starter", ""):
        checks.append(("sshd (for jobs on this machine)", _version(["sshd", "-V"], "/usr/sbin/sshd")))
    if transport == "htcondor-native":
        tool = paths.settings().get("htcondor_native", {}).get("tool")
        checks.append(("condor_ssh_to_job", tool or shutil.which("condor_ssh_to_job") or
                       "missing: install HTCondor's client tools or set htcondor_native.tool"))
    return [f"check {name}: {result}" for name, result in checks]


def _sharing_state() -> str:
    """Where ssh's shared connections live for this account, or why there are none."""
    from sshconfig import control, settings
    if not settings.load().control_master:
        return "off (control_master = false): every ssh makes its own connection"
    directory = control.control_dir(create=False)
    if directory is None:
        tmp = control.tmp_dir()
        return f"off: {control.private_tmp_problem(tmp, create=False) or 'no short enough path'}"
    if control.needs_check(directory):
        return (f"in {directory} (no login runtime directory, and the state directory's path is "
                "too long for a socket: ssh checks it is yours alone before each use)")
    return f"in {directory}"


def _daemon_state() -> str:
    from proxycmd.daemon.server import sockets
    from sshconfig import install, settings
    if not settings.load().connect_daemon:
        return "off (connect_daemon = false): every ssh runs the full proxy"
    base = install.daemon_socket_base(create=False)
    if base is None:
        return ("off: no SO_PEERCRED here to check who connects, or no private directory "
                "gives a short enough socket path")
    running = sockets(base)
    state = ("listening at " + ", ".join(map(str, running)) if running
             else "not running (the next ssh starts it)")
    return f"{state}; {_spares()}"


def _spares() -> str:
    from sshconfig import settings
    seconds = settings.load().spare_session_seconds
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
