"""One ssh session: a fresh 0700 directory and an ``sshd -i`` whose stdin/stdout is the socket.

The directory holds the pids of the starter and of sshd (so that a later starter can tell a
stale directory from a live one), the session's host key, an authorized_keys with exactly the key that
authenticated, the sshd config and the setup script sshd runs as ForceCommand (sshd scrubs
the environment, so the script restores the job's). It is removed when sshd exits.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .processes import die_with_parent, has_children, marked
from .sshd import SshdHost

SESSION_PREFIX = "cjp-session-"
SESSION_ENV = "CONDOR_JOB_PROXY_SESSION"   # in a session's environment: its directory
STARTER_PID_FILE = "starter.pid"
SSHD_PID_FILE = "sshd.pid"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Login shells that can source the POSIX setup script themselves. sshd runs ForceCommand with
# the login shell, so sourcing it there, and running the command in that same shell, starts
# one shell per command as plain sshd does, not three (login shell, /bin/sh, login shell).
_BOURNE_SHELLS = frozenset({"sh", "bash", "dash", "ksh", "ksh93", "mksh", "zsh", "ash"})
_SSHD_CONFIG = """\
# sshd for one condor-job-proxy session; started as `sshd -i` by the job's starter.
HostKey {dir}/host_key
AuthorizedKeysFile {dir}/authorized_keys
ForceCommand {force_command}
Subsystem sftp internal-sftp
UsePAM no
StrictModes no
PidFile none
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthenticationMethods publickey
PermitTTY {permit_tty}
Banner {banner}
AllowTcpForwarding yes
X11Forwarding yes
X11UseLocalhost yes
PrintMotd no
PrintLastLog no
PermitUserEnvironment no
# curve25519 instead of the post-quantum hybrid default: a connect takes ~40 ms, not ~110.
KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256
LogLevel ERROR
"""


@dataclass
class JobContext:
    """What a session inherits from its job."""
    job: str
    cwd: str
    environment: dict[str, str]
    host_key_private: bytes
    host_key_public: str
    host: SshdHost
    pids: Callable[[], list[int]]   # the job's main pid first, then its other live processes


class Session:
    def __init__(self, context: JobContext, client_key: str, shells: list[str],
                 job_pids: list[int], spare: bool = False) -> None:
        """``job_pids`` become the session's _CONDOR_JOB_PIDS (the job's main pid first).
        A ``spare`` is opened ahead of need by the user's connect daemon, which hands it to
        the user's next ssh: until then nobody uses it (see ``in_use``)."""
        self.context = context
        self.job_pids = job_pids
        self.spare = spare
        self._claimed = not spare
        self.directory = Path(tempfile.mkdtemp(prefix=SESSION_PREFIX))
        try:
            self._write_files(client_key, shells)
        except BaseException:
            self.remove()
            raise
        self.process: subprocess.Popen | None = None

    def start(self, conn: socket.socket) -> None:
        """Run sshd on the connection itself: no relay on the job side."""
        host = self.context.host
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
        if host.nss_wrapper:
            env.update(LD_PRELOAD=host.nss_wrapper,
                       NSS_WRAPPER_PASSWD=str(self.directory / "passwd"),
                       NSS_WRAPPER_GROUP=str(self.directory / "group"))
        self.process = subprocess.Popen(
            [*die_with_parent(), host.sshd, "-i", "-f", str(self.directory / "sshd_config"),
             "-E", str(self.directory / "sshd.log")],
            stdin=conn.fileno(), stdout=conn.fileno(), stderr=subprocess.DEVNULL,
            env=env, close_fds=True, start_new_session=True)
        _write(self.directory / SSHD_PID_FILE, f"{self.process.pid}\n".encode(), 0o600)

    def in_use(self) -> bool:
        """False for a spare that no ssh has spoken to yet. sshd -i forks only once a client's
        version line has arrived; a spare's sshd has sent its own and waits for one."""
        if not self._claimed and self.process and has_children(self.process.pid):
            self._claimed = True
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
        if returncode not in (0, 255):
            try:
                log = (self.directory / "sshd.log").read_text(errors="replace").strip()
            except OSError:
                pass
        return log

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _write_files(self, client_key: str, shells: list[str]) -> None:
        d = self.directory
        _write(d / STARTER_PID_FILE, f"{os.getpid()}\n".encode(), 0o600)
        _write(d / "host_key", self.context.host_key_private, 0o600)
        _write(d / "authorized_keys", (client_key + "\n").encode(), 0o600)
        self._write_sshd_config()
        _write(d / "job_env.sh", self._environment_script().encode(), 0o600)
        _write(d / "setup.sh", self._setup_script(shells).encode(), 0o700)
        host = self.context.host
        if host.nss_wrapper:
            _write(d / "passwd", (host.passwd_line + "\n").encode(), 0o600)
            _write(d / "group", (host.group_line + "\n").encode(), 0o600)

    def _write_sshd_config(self) -> None:
        """Where sessions cannot have a terminal, sshd refuses one (the client goes on without
        it, or stops at ``-t``) instead of dying at the pty's chown, and its banner, the one
        line every client shows before the session, says why and how to fix it."""
        d = self.directory
        no_terminal = self._no_terminal_line()
        if no_terminal:
            _write(d / "banner", f"{no_terminal}\n".encode(), 0o600)
        config = _SSHD_CONFIG.format(dir=d, force_command=self._force_command(),
                                     permit_tty="no" if no_terminal else "yes",
                                     banner=d / "banner" if no_terminal else "none")
        _write(d / "sshd_config", config.encode(), 0o600)

    def _no_terminal_line(self) -> str | None:
        reason = self.context.host.no_terminal
        return f"condor-job-proxy: job {self.context.job} {reason}" if reason else None

    def _no_terminal_notice(self) -> tuple[str, str]:
        """Shell lines that repeat the banner's line for an interactive login without a
        terminal that came over a shared connection (ControlMaster): only the connection's
        first client showed the banner. The first session on this sshd marks that it ran."""
        line = self._no_terminal_line()
        if not line:
            return "", ""
        mark = shlex.quote(str(self.directory / "first-session-ran"))
        return (f"mkdir {mark} 2>/dev/null || cjp_shared=1\n",
                f"[ -n \"$cjp_shared\" ] && [ ! -t 0 ] && printf '%s\\n' {shlex.quote(line)} >&2\n"
                "        ")

    def _force_command(self) -> str:
        script = shlex.quote(str(self.directory / "setup.sh"))
        if os.path.basename(self.context.host.login_shell) in _BOURNE_SHELLS:
            return f"cjp_in_login_shell=1; . {script}"
        return f"/bin/sh {script}"

    def _environment_script(self) -> str:
        env = dict(self.context.environment)
        env["_CONDOR_JOB_PIDS"] = " ".join(map(str, self.job_pids))
        env[SESSION_ENV] = str(self.directory)
        return "".join(f"export {name}={shlex.quote(value)}\n"
                       for name, value in env.items() if _NAME.fullmatch(name))

    def _setup_script(self, shells: list[str]) -> str:
        q = shlex.quote
        cwd = q(self.context.cwd)
        candidates = " ".join(q(shell) for shell in shells if shell.startswith("/"))
        sftp = q(self.context.host.sftp_server or "/usr/lib/openssh/sftp-server")
        welcome = q(f"Welcome to job {self.context.job} on {socket.gethostname()}!")
        mark_session, no_terminal_notice = self._no_terminal_notice()
        return f"""\
# Session setup for job {self.context.job}: sshd runs this as ForceCommand.
login_shell=$SHELL
{mark_session}. {q(str(self.directory / "job_env.sh"))}
cd {cwd} || {{ echo "cannot enter the job's working directory" {cwd} >&2; exit 1; }}
if [ -z "$HOME" ] || [ ! -d "$HOME" ] || [ ! -w "$HOME" ]; then HOME={cwd}; fi
export HOME
SHELL=/bin/sh
for candidate in {candidates} "$login_shell"; do
    if [ -x "$candidate" ]; then SHELL=$candidate; break; fi
done
export SHELL
case $SSH_ORIGINAL_COMMAND in
    internal-sftp) exec {sftp} ;;
    "") {no_terminal_notice}printf '%s\\nYour condor job is running with pid(s) %s.\\n' {welcome} "$_CONDOR_JOB_PIDS"
        exec "$SHELL" -i ;;
esac
if [ -n "$cjp_in_login_shell" ] && [ "$SHELL" = "$login_shell" ]; then
    unset cjp_in_login_shell login_shell candidate cjp_shared
    eval "$SSH_ORIGINAL_COMMAND"
else
    exec "$SHELL" -c "$SSH_ORIGINAL_COMMAND"
fi
"""


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


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
