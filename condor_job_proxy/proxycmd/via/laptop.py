"""``connect --via AP HOST USER``: the laptop's side of ssh into a job through the access point.

The laptop cannot reach the pool; the access point can. We run the user's own ssh to the
access point with ``connect --relay --prelude`` there, read its prelude (the job's
authenticated host key, the login user, any session key), pin and install those in this
machine's per-job files, and only then let the first SSH byte through to the user's ssh.

Credentials: our laptop's public job-access key goes along (``--session-key``) and becomes the
session's authorized key, so no private key moves; a pool's own ssh-to-job only accepts the
key it issued, which arrives inside the prelude over the encrypted hop and is stored 0600.

Handing over: where ssh takes a socket (ProxyUseFdpass, not on Windows), the hop's ssh talks
over a socketpair whose other end goes to ssh, and no Python stays in the path; otherwise a
pure-Python relay (threads, os.read/os.write on pipes) copies, which works on Windows too.
"""
from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import NoReturn

from condor_job_proxy.common import paths
from condor_job_proxy.common.files import write_private
from condor_job_proxy.common.jobid import DEFAULT_HOST_PREFIX, BadJobId, JobId, parse_host

from .. import client_files, handoff
from . import prelude
from ..errors import ProxyError, one_line
from .hop import DEFAULT_COMMAND, Hop, ssh_argv, ssh_reason
from ..userkey import public_key_blob

FAILED = 255
HOP_EXIT_SECONDS = 5.0


def run(via: str, via_command: str | None, request: dict) -> int:
    """``connect --via``'s exit status; a failure is one line on stderr (and the terminal).
    ``request`` is the connect command line as ``condor_job_proxy.proxycmd.main`` parsed it."""
    from pathlib import Path
    paths.use_dirs(request["config_dir"], request["state_dir"])
    files = {key: Path(request[key]) if request[key] else None
             for key in ("identity", "known_hosts", "job_identity")}
    try:
        connect(Hop(via, via_command or DEFAULT_COMMAND), request["host"], request["user"],
                prefix=request["prefix"], **files)
        return 0
    except KeyboardInterrupt:
        return FAILED
    except Exception as err:   # noqa: BLE001 - the contract is one line, never a traceback
        if request["debug"]:
            raise
        from ..refusal import refuse
        line = one_line(err)
        refuse(line, request)
        return FAILED


def connect(hop: Hop, host: str, user: str | None, **options) -> None:
    """Set the job's session up through ``hop`` and hand it to ssh (fd or relay).
    ``options``: identity, known_hosts, job_identity, prefix (the include's paths)."""
    argv, files = _prepare(hop, host, user, **options)
    if os.name != "nt" and handoff.stdout_takes_fd():
        sock, _ = _hop_socket(argv, files)
        handoff.pass_fd(sock)   # the hop's ssh carries on; it ends when ssh closes the connection
    else:
        _relay_hop(argv, files)


def open_socket(hop: Hop, host: str, user: str | None = None,
                **options) -> tuple[socket.socket, prelude.Prelude]:
    """The job's session through ``hop`` as a socket, for a Python SSH client (not on Windows,
    whose subprocesses cannot take a socket as stdio)."""
    return _hop_socket(*_prepare(hop, host, user, **options))


def _prepare(hop: Hop, host: str, user: str | None, *, identity: Path | None = None,
             known_hosts: Path | None = None, job_identity: Path | None = None,
             prefix: str | None = None) -> tuple[list[str], _JobFiles]:
    try:
        job = parse_host(host, prefix or DEFAULT_HOST_PREFIX)
    except BadJobId as err:
        raise ProxyError(str(err)) from None
    identity = identity or paths.user_key_path()
    argv = ssh_argv(hop, _remote_words(host, user, identity, prefix))
    pins = client_files.known_hosts_file(host, known_hosts)
    return argv, _JobFiles(hop, host, job, identity, pins, job_identity)


def _remote_words(host: str, user: str | None, identity: Path, prefix: str | None) -> list[str]:
    words = ["connect", "--relay", "--prelude", "--session-key",
             public_key_blob(identity, "condor-job-proxy setup --via ACCESS-POINT")]
    if prefix and prefix != DEFAULT_HOST_PREFIX:
        words += ["--host-prefix", prefix]
    return [*words, host, *([user] if user else [])]


class _JobFiles:
    """Where this laptop keeps what the prelude brings for one job."""

    def __init__(self, hop: Hop, host: str, job: JobId, identity: Path, known_hosts: Path,
                 job_identity: Path | None) -> None:
        self.hop, self.host, self.job, self.identity = hop, host, job, identity
        self.known_hosts, self.job_identity = known_hosts, job_identity

    def install(self, fd: int) -> prelude.Prelude:
        """Read and check the prelude from ``fd``, then write the pinned key and credential."""
        received = prelude.read(fd, self.hop.target)
        client_files.pin(self.host, received.host_key, self.known_hosts,
                  f"authenticated on {self.hop.target}")
        key_file = (client_files.install_session_key(self.job, received.key) if received.key
                    else self.identity)
        _point_identity(self.host, key_file, self.job_identity)
        return received


def _point_identity(host: str, key_file: Path, target: Path | None) -> None:
    """The job's identity link; a private copy where this user cannot make symlinks (Windows)."""
    try:
        client_files.point_identity(host, key_file, target)
    except (OSError, NotImplementedError):
        link = target or client_files.identities_dir() / host
        link.unlink(missing_ok=True)
        write_private(link, key_file.read_text())


def _hop_socket(argv: list[str], files: _JobFiles) -> tuple[socket.socket, prelude.Prelude]:
    """The hop's ssh on one end of a socketpair; ours, past the prelude, is the session."""
    import tempfile
    ours, theirs = socket.socketpair()
    with theirs, tempfile.TemporaryFile() as said:
        hop = subprocess.Popen(argv, stdin=theirs, stdout=theirs, stderr=said)
        try:
            received = files.install(ours.fileno())
        except BaseException as err:
            ours.close()
            _end(hop, err, said)
        _pass_on(said)
    return ours, received


def _relay_hop(argv: list[str], files: _JobFiles) -> None:
    """The hop's ssh on pipes, relayed to and from our stdio by threads."""
    import tempfile
    with tempfile.TemporaryFile() as said:
        hop = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                               stderr=said)
        try:
            files.install(hop.stdout.fileno())
        except BaseException as err:
            _end(hop, err, said)
        _pass_on(said)
    handoff.relay_process(hop)


def _pass_on(said) -> None:
    """What the hop's ssh said while the session was set up (warnings), to our stderr: it
    went to a file so that a failure's reason could be read back into our one line."""
    said.seek(0)
    text = said.read(64 * 1024)
    if text:
        try:
            os.write(2, text)
        except OSError:
            pass


def _end(hop: subprocess.Popen, err: BaseException, said) -> NoReturn:
    """Let a failed hop's ssh go (it exits by itself after an error prelude, else is stopped)
    and raise ``err``, with ssh's own reason when it ended before saying anything: under
    ControlPersist ssh puts our stderr, and so its own, on /dev/null."""
    for pipe in (hop.stdin, hop.stdout):
        if pipe is not None:
            pipe.close()
    try:
        status = hop.wait(HOP_EXIT_SECONDS)
    except subprocess.TimeoutExpired:
        hop.kill()
        status = hop.wait()
    if isinstance(err, prelude.HopClosed) and status:
        said.seek(0)
        reason = ssh_reason(said.read(64 * 1024))
        why = f": {reason}" if reason else ", saying nothing"
        raise ProxyError(f"{err} (ssh exited with status {status}{why})") from None
    raise err
