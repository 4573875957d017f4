"""The connect daemon: a per-user process that does the ProxyCommand's work for ssh.

A ProxyCommand process per ssh run pays a Python start with site-packages, our imports and
two ssh-keygen runs before the first byte reaches the starter: about as long again as the
whole SSH login it precedes. The daemon pays these once. ssh runs the tiny client
(condor_job_proxy/proxycmd/daemon/quick.py), which hands its request over a private unix
socket; the daemon resolves the job, authenticates to its starter signing in-process, pins the host key and identity link
exactly as the proxy command would, and passes the connected socket back, which the client
passes on to ssh. Bytes never go through the daemon.

It serves only its own user (the socket lives in a 0700 directory and each peer's uid is
checked), only requests made with its own proxy options and environment, only keys it can
sign with itself (a passphrase is asked for on the terminal, which the daemon has not), only
our starter's and EC2's transports (HTCondor-native jobs, whose connect runs HTCondor's own
tool, go to the full command): anything else it answers "do it yourself", and the client
runs the full proxy command. A job connected to again and again without a shared connection
gets its next session opened ahead of need (``spares``). It exits after a quiet spell, when
config.toml changes, when its socket is removed, or on SIGTERM. Like ControlPersist, it is
started by use: the first connect after it has gone runs the full command, which starts it
again.
"""
from __future__ import annotations

import fcntl
import os
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path

from condor_job_proxy.common import paths, sshsig
from condor_job_proxy.common.files import is_private

from .. import fdpass, options, outcome, transports
from ..model import JobEndpoint, ReadySession
from . import quick
from .spares import Spares

REQUEST_LIMIT = 256 * 1024
REQUEST_SECONDS = 10.0
DEFAULT_IDLE_SECONDS = 600.0


class Daemon:
    """One listening socket; a thread per request; the options every request must share."""

    def __init__(self, socket_path: Path, shared: dict, idle_seconds: float,
                 after_user_mismatch: outcome.Hook | None = None,
                 spares: Spares | None = None) -> None:
        self.socket_path = socket_path
        self.shared = shared              # queue, config_dir, state_dir: as parse_connect has them
        self.idle_seconds = idle_seconds
        self.after_user_mismatch = after_user_mismatch
        self.spares = spares or Spares(0)
        self.context = quick.context(os.environb)
        self.config_stamp = _stamp(paths.config_file())
        self.busy = 0
        self.last_request = time.monotonic()
        self.lock = threading.Lock()

    def serve(self) -> None:
        """Accept until idle for ``idle_seconds`` with nothing in flight, or config.toml changes."""
        listener = _listen(self.socket_path)
        bound = os.stat(self.socket_path).st_ino
        listener.settimeout(min(self.idle_seconds, self.spares.lifetime or 5.0, 5.0))
        try:
            while not self._should_stop(bound):
                self.spares.expire()
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                with self.lock:
                    self.busy += 1
                    self.last_request = time.monotonic()
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()
        finally:
            if _inode(self.socket_path) == bound:
                self.socket_path.unlink(missing_ok=True)
            listener.close()
            self.spares.close()

    def _should_stop(self, bound: int) -> bool:
        """Idle long enough, config.toml changed, or our socket is gone (its directory was
        cleaned up, as a login's runtime directory is at logout)."""
        with self.lock:
            idle = time.monotonic() - self.last_request
            if self.busy == 0 and idle >= self.idle_seconds:
                return True
        return self._config_changed() or _inode(self.socket_path) != bound

    def _config_changed(self) -> bool:
        return _stamp(paths.config_file()) != self.config_stamp

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(REQUEST_SECONDS)
            self._answer(conn)
        except OSError:
            pass      # the client went away; its ssh reports that
        finally:
            conn.close()
            with self.lock:
                self.busy -= 1
                self.last_request = time.monotonic()
                idle = self.busy == 0
        if idle:
            self.spares.refill()

    def _answer(self, conn: socket.socket) -> None:
        data = _read_request(conn)     # read whole, even to refuse: closing on unread data resets
        if _peer_uid(conn) != os.getuid():
            _reply_failure(conn, "condor-job-proxy: this connect daemon serves only its own user")
            return
        request = self._request(data)
        if request is None:
            conn.sendall(quick.FALLBACK)
            return
        identity = request["identity"] or str(paths.user_key_path())
        status, line = outcome.connect_outcome(
            {**request, "may_wait": False}, deliver=lambda ready: _pass_socket(conn, ready),
            serves=lambda endpoint: _serves(endpoint, identity),
            after_user_mismatch=self.after_user_mismatch, opener=self.spares.open_session)
        if status == outcome.NOT_SERVED:
            conn.sendall(quick.FALLBACK)
        elif status != 0:
            _reply_failure(conn, line, status)

    def _request(self, data: bytes | None) -> dict | None:
        """The connect request, when it is one this daemon may serve as the full command would."""
        if data is None:
            return None
        parts = data.split(b"\0")
        if len(parts) < 2 or parts[0] not in (quick.PROTOCOL, quick.RELAY_PROTOCOL) \
                or not parts[1].isdigit() \
                or len(parts[1]) > 6:    # int() refuses (ValueError) beyond 4300 digits
            return None
        count = int(parts[1])
        command = [os.fsdecode(word) for word in parts[2:2 + count]]
        # command[0] is not compared: the socket's name already stands for the interpreter.
        if (parts[2 + count:] != self.context or self._config_changed()
                or command[1:3] != ["-m", "condor_job_proxy"]):
            return None
        request = options.parse_connect(command[3:])
        if (request is None or request["debug"] or request["relay"]
                or any(request[key] for key in options.VIA_MODES)
                or any(request[key] != value for key, value in self.shared.items())):
            return None
        # Its client relays for a caller that may need the host key certified (asyncssh);
        # OpenSSH, handed the socket, checks the pin and gets no certificate.
        return {**request, "certify": parts[0] == quick.RELAY_PROTOCOL}


def _serves(endpoint: JobEndpoint, identity: str) -> bool:
    """What the endpoint's transport lets the daemon do: EC2 jobs, and our starter's when the
    daemon can sign with the key itself: a key that ssh-keygen must load (a passphrase, a key
    only in ssh-agent) is the full command's, which runs where ssh can ask for the passphrase
    on the terminal. HTCondor-native jobs run HTCondor's own tool, which gains nothing from
    the daemon."""
    backend = transports.load(endpoint.transport)
    return not backend.runs_htcondor_tool and (not backend.signs_with_user_key
                                               or sshsig.signs_in_process(identity))


def serve(socket_path: Path, shared: dict, idle_seconds: float = DEFAULT_IDLE_SECONDS,
          after_user_mismatch: outcome.Hook | None = None,
          spare_seconds: float = 0) -> None:
    """Run a daemon at ``socket_path`` unless another one already holds it; ``spare_seconds``
    is how long a spare session is kept (0: none are opened)."""
    lock_file = _hold_lock(socket_path)
    if lock_file is None:
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sshsig.sign_in_process()
    paths.use_dirs(shared["config_dir"], shared["state_dir"])
    Daemon(socket_path, shared, idle_seconds, after_user_mismatch,
           Spares(spare_seconds)).serve()


def sockets(base: Path) -> list[Path]:
    """The sockets of the daemons started for ``base`` (one per environment)."""
    return sorted(base.parent.glob(f"{base.name}-*.sock"))


def stop(socket_path: Path, wait_seconds: float = 5.0) -> None:
    """SIGTERM the daemon holding ``socket_path``'s lock (its pid is in the lock file) and wait
    until it has let go of the lock."""
    try:
        with open(f"{socket_path}.lock") as lock_file:
            if _lock_is_free(lock_file):
                return
            pid = lock_file.read().strip()
            if pid.isdigit():
                try:
                    os.kill(int(pid), signal.SIGTERM)
                except ProcessLookupError:
                    return
            deadline = time.monotonic() + wait_seconds
            while not _lock_is_free(lock_file) and time.monotonic() < deadline:
                time.sleep(0.02)
    except FileNotFoundError:
        pass


def _lock_is_free(lock_file) -> bool:
    try:
        fcntl.flock(lock_file, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(lock_file, fcntl.LOCK_UN)
    return True


def _hold_lock(socket_path: Path) -> object | None:
    """An exclusive lock for the daemon's whole life, or None when another daemon has it."""
    lock_file = open(f"{socket_path}.lock", "a")
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        return None
    lock_file.truncate(0)
    lock_file.write(f"{os.getpid()}\n")
    lock_file.flush()
    return lock_file


def _listen(socket_path: Path) -> socket.socket:
    """Bind in place of any socket a dead daemon left; we hold the lock, so none is alive."""
    directory = socket_path.parent
    if not is_private(directory.stat()):
        raise PermissionError(f"{directory} must be a 0700 directory of yours")
    try:
        socket_path.unlink()
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    listener.listen(64)
    return listener


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _peer_uid(conn: socket.socket) -> int:
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                           struct.calcsize("3i")))
    return uid


def _read_request(conn: socket.socket) -> bytes | None:
    """The whole request (the client shuts down its side), or None when it is too large."""
    chunks, size = [], 0
    while chunk := conn.recv(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > REQUEST_LIMIT:
            return None
    return b"".join(chunks)


def _pass_socket(conn: socket.socket, ready: ReadySession) -> None:
    """The socket, and after K any line the client shows the user (an EC2 first use)."""
    line = f"{ready.notice}\n".encode(errors="replace") if ready.notice else b""
    try:
        fdpass.send(conn, ready.sock, quick.SOCKET + line)
    finally:
        ready.sock.close()


def _reply_failure(conn: socket.socket, line: str, status: int = outcome.FAILED) -> None:
    conn.sendall(quick.FAILED + f"{status}\n{line}\n".encode(errors="replace"))


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size
