"""htcondor-native: ride on the pool's own ssh-to-job (HTCondor's ``condor_ssh_to_job``).

We run the tool with ``-ssh`` naming our grabber (condor_job_proxy.proxycmd.ssh_to_job.native_grabber).
The schedd authorizes us, the execute node's starter spawns ``sshd -i`` for the job, and the tool offers
the connected socket on its ``fdpass`` socket; the grabber passes it, the session's client key,
host key and login user to us over a private unix socket and exits; the tool then deletes its
directory and exits. The socket outlives the tool (it closes its copy without a shutdown), so
ssh talks to the job's sshd directly after we hand it over.

Right after a job starts, the tool fails with only "(Use -auto-retry ...)" until the starter
has reported its address: we retry that for a bounded time instead of failing.
"""
from __future__ import annotations

import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from condor_job_proxy.common import paths
from condor_job_proxy.common.keys import normalize
from condor_job_proxy.common.names import is_login_name, printable
from condor_job_proxy.common.settings import NativeSettings

from .. import client_files, fdpass
from ..ssh_to_job import htcondor_tool
from ..errors import ProxyError
from ..model import JobEndpoint, OpenSession, SessionRequest
from . import BaseTransport

NOT_YET = "(Use -auto-retry to keep trying periodically.)"
ATTEMPT_SECONDS = 120.0
TOOL_EXIT_SECONDS = 10.0
# The name the tool reports when the execute node's CONDOR_SSH_TO_JOB_FAKE_PASSWD_ENTRY is on
# (HTCondor's default): the job's sshd then takes any login name (shared/reference).
ANY_NAME_USER = "condor-user"


class _NotYet(Exception):
    """The tool said the job's starter cannot be reached yet; worth another try."""


class Transport(BaseTransport):
    """The pool's own ssh-to-job, through HTCondor's condor_ssh_to_job and our grabber."""
    name = "htcondor-native"
    runs_htcondor_tool = True

    def insisted_user(self, session_user: str) -> str:
        """``condor-user`` (HTCondor's default fake passwd entry) means any name will do."""
        return "" if session_user == ANY_NAME_USER else session_user

    def open_session(self, endpoint: JobEndpoint, request: SessionRequest) -> OpenSession:
        settings = paths.settings().htcondor_native
        wait = settings.wait_seconds
        deadline = time.monotonic() + wait
        delay = 0.5
        while True:
            try:
                handed = _attempt(endpoint, request, settings)
                break
            except _NotYet:
                if time.monotonic() + delay > deadline:
                    raise ProxyError(f"job {endpoint.job} is running but its starter is not ready for "
                                     f"ssh yet (waited {wait:g} s); try again in a few seconds") from None
                time.sleep(delay)
                delay = min(delay * 2, 4.0)
        return _accept(endpoint, handed)


def _accept(endpoint: JobEndpoint, handed: tuple) -> OpenSession:
    """Keep what the pool told us: the session key, and a login user the job's sshd insists on
    (for this job and, as the pool's setting, for the next job; not ``condor-user``, which means
    any name will do). The user goes into the include and the host key into known_hosts: both
    are checked first."""
    sock, info = handed
    user = info.get("user")
    host_keys = [normalize(line) for line in str(info.get("host_key", "")).splitlines()]
    if not is_login_name(user) or not host_keys or None in host_keys:
        sock.close()
        raise ProxyError(f"job {endpoint.job}: condor_ssh_to_job gave a login user "
                         f"({printable(repr(user), 80)}) or host key this proxy cannot use")
    if user != ANY_NAME_USER:
        client_files.remember_user(endpoint.job, user)
        client_files.remember_pool_user(user)
    key_file = client_files.install_session_key(endpoint.job, str(info["key"]))
    return OpenSession(sock, "\n".join(host_keys), user, key_file=str(key_file))


def tool_argv(endpoint: JobEndpoint, request: SessionRequest, settings: NativeSettings,
              handoff: Path) -> list[str]:
    tool = settings.tool or htcondor_tool.find()
    if not tool:
        raise ProxyError("HTCondor's condor_ssh_to_job is not on PATH (needed for job "
                         f"{endpoint.job}, which does not run condor-job-proxy's starter)")
    grabber = [sys.executable, "-m", "condor_job_proxy.proxycmd.ssh_to_job.native_grabber",
               f"--handoff={handoff}"]
    argv = [tool]
    if endpoint.schedd:
        argv += ["-name", endpoint.schedd]
    if endpoint.pool:
        argv += ["-pool", endpoint.pool]
    if request.shells:
        argv += ["-shells", ",".join(request.shells)]
    if settings.keygen_options:
        argv += ["-keygen-options", settings.keygen_options]
    return argv + ["-ssh", " ".join(_v2_quote(word) for word in grabber), str(endpoint.job)]


def _v2_quote(word: str) -> str:
    """HTCondor's V2 argument syntax, which the tool uses to split its -ssh string."""
    if word and not any(c.isspace() or c == "'" for c in word):
        return word
    return "'" + word.replace("'", "''") + "'"


def _attempt(endpoint: JobEndpoint, request: SessionRequest, settings: NativeSettings):
    private = Path(tempfile.mkdtemp(prefix="cjp-native-"))
    try:
        handoff = private / "handoff"
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as listener:
            listener.bind(str(handoff))
            listener.listen(1)
            tool = subprocess.Popen(tool_argv(endpoint, request, settings, handoff),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
            try:
                return _await_handoff(endpoint, tool, listener)
            finally:
                _reap(tool)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _await_handoff(endpoint: JobEndpoint, tool: subprocess.Popen, listener: socket.socket):
    """Wait for the grabber's connection, or for the tool to end without one."""
    errors = bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(listener, selectors.EVENT_READ)
        selector.register(tool.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + ATTEMPT_SECONDS
        while time.monotonic() < deadline:
            for key, _ in selector.select(1.0):
                if key.fileobj is listener:
                    return _receive(endpoint, listener)
                chunk = os.read(tool.stderr.fileno(), 65536)
                if not chunk:
                    selector.unregister(tool.stderr)
                errors += chunk[:4096]
            if tool.poll() is not None and not selector.select(0):
                _raise_tool_failure(endpoint, tool.returncode, errors.decode(errors="replace"))
    raise ProxyError(f"job {endpoint.job}: condor_ssh_to_job gave no connection in "
                     f"{ATTEMPT_SECONDS:g} s")


def _receive(endpoint: JobEndpoint, listener: socket.socket):
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(10)
        message, sock = fdpass.receive(conn, 65536)
        if sock is None:
            raise ProxyError(f"job {endpoint.job}: the grabber passed no connection")
        try:
            info = json.loads(message)
        except ValueError:
            info = None
        if not isinstance(info, dict):
            sock.close()
            raise ProxyError(f"job {endpoint.job}: unreadable message from the grabber")
        conn.sendall(b"\0")
    return sock, info


def _raise_tool_failure(endpoint: JobEndpoint, status: int, stderr: str) -> None:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if lines and lines[-1] == NOT_YET:
        raise _NotYet()
    detail = printable("; ".join(lines[-3:])) or f"exit status {status}"
    raise ProxyError(f"job {endpoint.job}: condor_ssh_to_job: {detail}")


def _reap(tool: subprocess.Popen) -> None:
    """Let the tool remove its directory and exit; stop it if it lingers."""
    try:
        tool.wait(TOOL_EXIT_SECONDS)
    except subprocess.TimeoutExpired:
        tool.terminate()
        tool.wait()
    tool.stderr.close()
