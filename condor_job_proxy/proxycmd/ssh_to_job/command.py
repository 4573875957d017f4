"""``condor_ssh_to_job`` on top of the proxy: HTCondor's command line, exit codes and messages.

It needs neither the user's ssh_config nor ``setup``. Like HTCondor's tool, it sets the
session up itself (resolve, authenticate to the starter, pin the session's host key) and only
then runs ssh with explicit ``-o`` options; ssh's ProxyCommand
(``condor_job_proxy.proxycmd.ssh_to_job.fdrelay``) fetches the ready connection over a unix socket. So every failure is known before ssh starts and is
worded as HTCondor words it, with HTCondor's exit code. What the session needs (known_hosts,
an optional per-session key, the socket) lives in a fresh 0700 directory under TMPDIR, named
like HTCondor's (``<user>.condor_ssh_to_job_<hex>``) and removed however the session ends.
"""
from __future__ import annotations

import getpass
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from condor_job_proxy.common.jobid import JobId
from condor_job_proxy.common.names import is_login_name, printable, user_of_uid

from .. import fdpass, pipeline, transports
from . import htcondor_tool as htcondor_tool_module
from ..errors import JobNotFound, JobNotRunning, NotAuthorized, ProxyError, report
from ..model import JobEndpoint, ReadySession, SessionRequest
from ..resolvers import BaseResolver
from ..userkey import ensure_key, public_key_blob
from ..ondemand.waiting import StatusLine, Waiter, explainer

SETUP_FAILED = 1
# Test/debug only: seconds between -auto-retry attempts instead of HTCondor's 5 s, then 30 s.
RETRY_SECONDS_ENV = "CONDOR_SSH_TO_JOB_RETRY_SECONDS"
# Set when we hand the command line to HTCondor's own tool, so it can never come back to us.
HANDED_OVER_ENV = "CONDOR_JOB_PROXY_HANDED_OVER"
TOOL = "condor_ssh_to_job"
NATIVE = "htcondor-native"   # the transport of pool jobs that HTCondor's own tool serves
_INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


@dataclass
class Request:
    """One condor_ssh_to_job command line, parsed."""
    job: JobId
    command: list[str] = field(default_factory=list)
    ssh_command: str = "ssh"
    keygen_options: str | None = None
    shells: list[str] = field(default_factory=list)
    auto_retry: bool = False
    remove_on_interrupt: bool = False
    x11: bool | None = None
    debug: bool = False
    schedd: str | None = None
    pool: str | None = None
    login: str | None = None   # -l USER: only the consent to enter another account's local job
    argv: list[str] = field(default_factory=list)   # as given, for handing over to HTCondor's


class SetupFailed(Exception):
    """No session: one line for the user and HTCondor's exit status."""

    def __init__(self, message: str, status: int = SETUP_FAILED) -> None:
        super().__init__(message)
        self.status = status


class _Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def run(request: Request) -> int:
    """Set up the session and run ssh (or -ssh's program); its status, or HTCondor's code."""
    try:
        with _Interrupts() as interrupts:
            try:
                return _run(request, interrupts)
            except _Interrupted:
                pass
            _remove_if_asked(request)
            return SETUP_FAILED
    except SetupFailed as err:
        print(err, file=sys.stderr)
        return err.status
    except OSError as err:
        print(f"{TOOL}: {err}", file=sys.stderr)
        return SETUP_FAILED


def split_arguments(text: str) -> list[str]:
    """HTCondor's rule for -ssh: split on spaces; single quotes group ('' is a literal ')."""
    args, current, quoted, pending, i = [], [], False, False, 0
    while i < len(text):
        char = text[i]
        if char == "'":
            if quoted and text[i + 1:i + 2] == "'":
                current.append("'")
                i += 1
            else:
                quoted = not quoted
            pending = True
        elif char.isspace() and not quoted:
            if pending:
                args.append("".join(current))
            current, pending = [], False
        else:
            current.append(char)
            pending = True
        i += 1
    if quoted:
        raise SetupFailed(f"Unbalanced single quote in: {text}", 2)
    if pending:
        args.append("".join(current))
    return args


def _run(request: Request, interrupts: _Interrupts) -> int:
    resolver = _resolver(request)
    waiter = _waiter(request, resolver)
    while True:
        endpoint = _wait_for_endpoint(request, resolver, waiter)
        waiter.done()
        try:
            with SessionDirectory() as directory:
                status = _session(request, endpoint, directory, interrupts)
        except ProxyError as err:   # the job stopped (or is not ready) between resolve and now
            if not (request.auto_retry and _may_start(err)):
                raise _setup_failure(request, err) from None
            waiter.wait(err)
            continue
        if interrupts.signum is not None:
            _remove_if_asked(request)
            return SETUP_FAILED
        return status


def _resolver(request: Request) -> BaseResolver:
    from ..resolvers import default_resolver
    try:
        return default_resolver(schedd=request.schedd, pool=request.pool)
    except ProxyError as err:
        _hand_over(request)
        raise SetupFailed(str(err)) from None


def _wait_for_endpoint(request: Request, resolver: BaseResolver, waiter: Waiter) -> JobEndpoint:
    """Resolve the job; with -auto-retry, keep trying while it has not started."""
    while True:
        try:
            endpoint = resolver.resolve(request.job)
            _debug(request, f"job {request.job}: {endpoint.transport} at {endpoint.address}, "
                            f"user {endpoint.user}")
            if transports.load(endpoint.transport).runs_htcondor_tool:
                _leave_to_htcondor(request)
            return endpoint
        except JobNotFound as err:
            _hand_over(request)   # not ours: HTCondor's own tool may know it
            if not request.auto_retry:
                raise _setup_failure(request, err) from None
            waiter.wait(err)
        except ProxyError as err:
            if getattr(err, "transport", "") == NATIVE:
                _leave_to_htcondor(request)
            if not (request.auto_retry and _may_start(err)):
                raise _setup_failure(request, err) from None
            waiter.wait(err)


def _may_start(err: ProxyError) -> bool:
    """Waiting helps a job not started yet; a local job not in the queue may be submitted."""
    return isinstance(err, JobNotFound) or (isinstance(err, JobNotRunning) and err.may_start)


def _setup_failure(request: Request, err: ProxyError) -> SetupFailed:
    """HTCondor's wording and exit code for a session that could not be set up."""
    if isinstance(err, JobNotFound):
        return SetupFailed("Unable to fetch job ad; is it still in the queue?")
    if isinstance(err, NotAuthorized):   # named as the schedd names the user: by the uid
        user = user_of_uid(os.getuid()) or getpass.getuser()
        return SetupFailed(f"{user} is not authorized for access to the starter for job {request.job}")
    if getattr(err, "htcondor_words", ""):   # a parallel job named without its node
        return SetupFailed(err.htcondor_words)
    if isinstance(err, JobNotRunning) and err.state == "held":
        return SetupFailed(f'Job is held: "{err.hold_reason}".')
    if isinstance(err, JobNotRunning) and err.may_start:
        return SetupFailed(f"{err}\n(Use -auto-retry to keep trying periodically.)"
                           if request.debug else "(Use -auto-retry to keep trying periodically.)")
    return SetupFailed(str(err))


def _waiter(request: Request, resolver: BaseResolver) -> Waiter:
    """-auto-retry's wait: HTCondor's "Waiting for job to start..." once, then a live status
    line (with the pool's analysis, where it can say) on a terminal only."""
    return Waiter(request.job, StatusLine(log_changes=False, stream=sys.stderr), retry_interval,
                  announce="Waiting for job to start...", explain=explainer(resolver, request.job),
                  debug=lambda message: _debug(request, message))


def retry_interval(elapsed: float) -> float:
    """HTCondor's pace: every 5 s for the first 5 minutes, then every 30 s."""
    override = os.environ.get(RETRY_SECONDS_ENV)
    if override:
        return float(override)
    return 5.0 if elapsed < 300 else 30.0


class SessionDirectory:
    """``$TMPDIR/<user>.condor_ssh_to_job_<hex>/`` (0700), removed on leaving the block."""

    def __enter__(self) -> Path:
        base = Path(tempfile.gettempdir())
        while True:
            path = base / f"{getpass.getuser()}.{TOOL}_{secrets.token_hex(6)}"
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:
                continue
            self.path = path
            return path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _asked_user(request: Request, endpoint: JobEndpoint) -> str:
    """The login name this command line asks for. The job decides it (``-l`` is ignored),
    except for another account's local job: that is entered only when ``-l`` names its
    account, as ssh's typed ``user@`` is the consent there."""
    if not endpoint.notice:
        return endpoint.user
    return request.login or user_of_uid(os.getuid()) or str(os.getuid())


def _session(request: Request, endpoint: JobEndpoint, directory: Path,
             interrupts: _Interrupts) -> int:
    """Open the session through the one pipeline, offer its socket to ssh and run ssh once.

    EC2 jobs, as HTCondor documents, take no -ssh, -shells, -keygen-options or -X, and their
    login name is the user's to give (``-l USER`` in the remote command); unlike HTCondor we
    pin the instance's host keys (console, else first use) as for every job.
    """
    ec2 = transports.load(endpoint.transport).plain_sshd
    login_key, session_key = (None, "") if ec2 else _session_key(request, directory)
    known_hosts = directory / "known_hosts"
    ready = pipeline.open_ready(endpoint, SessionRequest(
        _asked_user(request, endpoint), _user_key(ec2), () if ec2 else tuple(request.shells), session_key,
        known_hosts, request.job.host(), login_key=login_key), known_hosts)
    if not is_login_name(ready.user):   # it goes on ssh's command line as -oUser=
        ready.sock.close()
        raise SetupFailed(f"job {request.job}: the session's login user "
                          f"{printable(repr(ready.user), 80)} is not a valid login name")
    _debug(request, f"job {request.job}: session open, login user {ready.user}")
    if ready.notice:
        report(ready.notice)
    with _Offer(ready.sock, directory / "fdpass"):
        argv = ssh_argv(request, ready, directory, ec2)
        _debug(request, "running: " + shlex.join(argv))
        status = interrupts.run(argv)
    if status < 0:
        _debug(request, f"{argv[0]} was killed by signal {-status}")
        return SETUP_FAILED   # HTCondor: ssh killed by a signal -> 1
    return status


class _Offer:
    """The authenticated connection, offered once on a unix socket in the session directory.

    The directory is 0700, so only this user can take it. Our copy is closed once ssh has it
    (or when the session ends), so the job side sees the end of the session when ssh exits.
    """

    def __init__(self, sock: socket.socket, path: Path) -> None:
        self.sock = sock
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with fdpass.socket_address(str(path)) as address:
            self.listener.bind(address)
        self.listener.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> _Offer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)   # wakes accept() if ssh never asked
        except OSError:
            pass
        self.listener.close()
        self.thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            try:
                fdpass.send(conn, self.sock)
            except OSError:
                return
        self.sock.close()


def _user_key(ec2: bool) -> Path:
    """The job-access key that signs the handshake, made on first use (no setup needed); an
    EC2 job has no handshake of ours and needs none."""
    from condor_job_proxy.common import paths

    if ec2:
        return paths.user_key_path()
    try:
        return ensure_key()[0]
    except ProxyError as err:
        raise SetupFailed(str(err)) from None


def _session_key(request: Request, directory: Path) -> tuple[Path | None, str]:
    """-keygen-options: (this session's private key, its public half for the starter to let in);
    (None, "") without it."""
    if request.keygen_options is None:
        return None, ""
    key = directory / "ssh_key"
    argv = ["ssh-keygen", *split_arguments(request.keygen_options), "-q", "-N", "",
            "-C", f"{TOOL} {request.job}", "-f", str(key)]
    _debug(request, "running: " + shlex.join(argv))
    proc = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or not key.exists():
        reason = proc.stderr.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        raise SetupFailed(f"Failed to create ssh key with ssh-keygen: {reason}")
    return key, public_key_blob(key)


def ssh_argv(request: Request, ready: ReadySession, directory: Path, ec2: bool = False) -> list[str]:
    """ssh (or -ssh's program) with every option it needs on the command line.

    The host name given to ssh is only a label: the ProxyCommand fetches this job's session
    whatever the name, and HostKeyAlias makes ssh check the key pinned for the job, so scp's
    ``remote:`` or any other placeholder reaches the job. ssh takes the first User it is given,
    so an EC2 job's ``-l USER`` in the remote command leaves ours out.
    """
    program, *extra = ["ssh"] if ec2 else split_arguments(request.ssh_command) or ["ssh"]
    host = request.job.host()
    user = [] if ec2 and "-l" in request.command else [f"-oUser={ready.user}"]
    options = [*user, f"-oIdentityFile={_ssh_path(ready.identity)}",
               "-oIdentitiesOnly=yes", "-oStrictHostKeyChecking=yes",
               f"-oUserKnownHostsFile={_ssh_path(ready.known_hosts)}",
               f"-oGlobalKnownHostsFile={_ssh_path(ready.known_hosts)}", f"-oHostKeyAlias={host}",
               f"-oProxyCommand={_proxy_command(directory)}",
               "-oProxyUseFdpass=yes", "-oControlPath=none", "-oUpdateHostKeys=no"]
    if request.x11 is not None and not ec2:
        options.append(f"-oForwardX11={'yes' if request.x11 else 'no'}")
    target = [] if os.path.basename(program) == "scp" else [host]
    return [program, *extra, *options, *target, *request.command]


def _proxy_command(directory: Path) -> str:
    """This interpreter by absolute path (never a shim on PATH) fetching the ready session."""
    argv = [sys.executable, "-m", "condor_job_proxy.proxycmd.ssh_to_job.fdrelay",
            str(directory / "fdpass")]
    return shlex.join(argv).replace("%", "%%")


def _ssh_path(path: Path) -> str:
    """A path as an ssh -o value: % escaped (ssh expands tokens), quoted if it has spaces."""
    text = str(path).replace("%", "%%")
    return f'"{text}"' if " " in text else text


def _remove_if_asked(request: Request) -> None:
    """-remove-on-interrupt: take the job out of its queue (the local one or the schedd's)."""
    if not request.remove_on_interrupt:
        return
    from ..resolvers import default_resolver
    try:
        resolver = default_resolver(schedd=request.schedd, pool=request.pool)
        resolver.remove(request.job, f"{TOOL} -remove-on-interrupt was interrupted")
        _debug(request, f"removed job {request.job}")
    except (ProxyError, ValueError, OSError) as err:
        print(f"Failed to remove job {request.job}: {err}", file=sys.stderr)


def _hand_over(request: Request) -> None:
    """A job we cannot serve goes to HTCondor's own condor_ssh_to_job, when it is installed."""
    tool = htcondor_tool()
    if tool is None:
        return
    _debug(request, f"job {request.job} is not ours: handing over to {tool}")
    os.environ[HANDED_OVER_ENV] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(tool, [tool, *request.argv])


def _leave_to_htcondor(request: Request) -> None:
    """A pool job that runs no starter of ours is HTCondor's own tool's to serve, exactly as
    the user would have had it without us: its sshd lets in only the key pair the tool makes
    for the session, its flags and messages are the reference. Without the tool: one line."""
    _hand_over(request)
    raise SetupFailed(f"job {request.job} runs no condor-job-proxy starter, so it is reached "
                      f"through HTCondor's condor_ssh_to_job, which is not on PATH")


def htcondor_tool() -> str | None:
    """HTCondor's own tool on PATH; none once we were handed over to (no loops)."""
    return None if os.environ.get(HANDED_OVER_ENV) else htcondor_tool_module.find()


def _debug(request: Request, message: str) -> None:
    if request.debug:
        print(f"{TOOL}: {message}", file=sys.stderr, flush=True)


class _Interrupts:
    """Catches Ctrl-C and termination for the whole session, so cleanup always runs.

    While ssh runs, the signal is passed on to it (so it ends) and the wrapper notes it;
    otherwise (e.g. while waiting for the job to start) it stops the wrapper at once.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._child: subprocess.Popen | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _Interrupts:
        for signum in _INTERRUPTS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def run(self, argv: list[str]) -> int:
        try:
            self._child = subprocess.Popen(argv)
        except OSError as err:
            raise SetupFailed(f"Failed to run {argv[0]}: {err.strerror}") from None
        try:
            return self._child.wait()
        finally:
            self._child = None

    def _handle(self, signum: int, _frame: object) -> None:
        self.signum = signum
        child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signum)
            return
        raise _Interrupted(signum)
