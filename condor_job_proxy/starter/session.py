"""One ssh session: a fresh 0700 directory and an ``sshd -i`` whose stdin/stdout is the socket.

The directory, inside the starter's private one, holds an authorized_keys with exactly the key
that authenticated; everything else a session needs is shared by the job's sessions
(``session_files``). It is removed when sshd exits, and with the starter's directory if the
starter is killed (its sshds die with it).
"""
from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from . import container
from .container_session import helper_command
from .processes import STANDARD_PATH, children, die_with_parent, has_children, marked
from ..common.files import write_private
from .session_files import SESSION_ENV, JobContext, session_argv

SESSION_PREFIX = "cjp-session-"


class Session:
    def __init__(self, context: JobContext, client_key: str, shells: list[str],
                 job_pids: list[int], spare: bool = False, host_cert: Path | None = None) -> None:
        """``job_pids`` become the session's _CONDOR_JOB_PIDS (the job's main pid first);
        ``host_cert`` is the client's certificate of the host key, which its sshd presents.
        A ``spare`` is opened ahead of need by the user's connect daemon, which hands it to
        the user's next ssh: until then nobody uses it (see ``in_use``)."""
        self.context = context
        self.job_pids = job_pids
        self.shells = shells
        self.spare = spare
        self.host_cert = host_cert
        self._claimed = not spare
        self._inside = False   # whether sshd runs in the job's container, a grandchild's child
        self.process: subprocess.Popen | None = None
        self._log: int | None = None
        self.directory = Path(tempfile.mkdtemp(prefix=SESSION_PREFIX, dir=context.directory))
        try:
            write_private(self.directory / "authorized_keys", client_key + "\n", 0o600)
        except BaseException:
            self.remove()
            raise

    def start(self, conn: socket.socket) -> None:
        """Run sshd on the connection itself: no relay on the job side. Its log goes to
        memory, read only if it fails: a file would cost a new inode per connect."""
        argv, env, cwd = self._command()
        self._log = os.memfd_create("sshd-log", os.MFD_CLOEXEC)
        self.process = subprocess.Popen(
            [*die_with_parent(), *argv],
            stdin=conn.fileno(), stdout=conn.fileno(), stderr=self._log,
            env=env, cwd=cwd, close_fds=True, start_new_session=True)
        self._give_job_limits()

    def _command(self) -> tuple[list[str], dict[str, str], Path | None]:
        """sshd's argv, environment and cwd: on this machine, or, for a job in a container
        of its own, the helper that runs it in there (``container_session``)."""
        inside = container.find(self.job_pids + self.context.adopted())
        if inside and not inside.refusal:
            self._inside = True
            argv, env = helper_command(self.context, self.directory, inside,
                                       container.pids_inside(inside), self.shells)
            return argv, env, self.directory
        host = self.context.host
        env = {"PATH": STANDARD_PATH}
        if host.nss_wrapper:
            shared = self.context.directory
            env.update(LD_PRELOAD=host.nss_wrapper, NSS_WRAPPER_PASSWD=str(shared / "passwd"),
                       NSS_WRAPPER_GROUP=str(shared / "group"))
        return (session_argv(self.context, self.directory, self.job_pids, self.shells,
                             self.host_cert), env, None)

    def _give_job_limits(self) -> None:
        """Sessions are job processes: they get the job's open-file limit, not the starter's
        raised one. Set before sshd can fork anything (it waits for the client's version line)."""
        if self.context.open_files and self.context.open_files != \
                resource.getrlimit(resource.RLIMIT_NOFILE):
            try:
                resource.prlimit(self.process.pid, resource.RLIMIT_NOFILE, self.context.open_files)
            except OSError:
                pass   # gone already

    def in_use(self) -> bool:
        """False for a spare that no ssh has spoken to yet. sshd -i forks only once a client's
        version line has arrived; a spare's sshd has sent its own and waits for one. In a
        container, sshd is the child of the anchor, the helper's (``enter``) child."""
        if not self._claimed and self.process:
            sshds = [self.process.pid]
            if self._inside:
                sshds = [sshd for anchor in children(self.process.pid) for sshd in children(anchor)]
            self._claimed = any(has_children(pid) for pid in sshds)
        return self._claimed

    def end_if_unused(self) -> None:
        """SIGKILL a spare's sshd that nobody uses, so it holds up neither the job's end nor
        its suspension (a stopped sshd would keep the next ssh waiting)."""
        if self.process and not self.in_use():
            try:
                self.process.kill()
            except OSError:
                pass

    def wait(self) -> str:
        """Wait for sshd to end; return what it logged if it failed."""
        returncode = self.process.wait() if self.process else 0
        if returncode < 0:    # sshd was killed: what it ran has no client left to serve
            end_processes(self.directory)
        log = ""
        if returncode not in (0, 255) and self._log is not None:
            log = os.pread(self._log, 65536, 0).decode(errors="replace").strip()
        return log

    def remove(self) -> None:
        if self._log is not None:
            os.close(self._log)
            self._log = None
        shutil.rmtree(self.directory, ignore_errors=True)


def end_processes(directory: Path) -> None:
    """SIGKILL what a session left running: its commands carry its directory in their
    environment, its login shell in its command line."""
    for _ in range(3):    # a shell may start another process while we look
        pids = marked(f"{SESSION_ENV}={directory}".encode(), str(directory).encode())
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

