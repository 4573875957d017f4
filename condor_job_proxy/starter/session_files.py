"""What every session of a job shares, written once into the starter's private directory.

sshd's config, the setup script it runs as ForceCommand (sshd scrubs the environment, so the
script restores the job's), the job's environment, the banner and libnss-wrapper's files are
the same for every session of a job: writing them per session cost ~1 ms of each connect on
ext4 (new inodes after many deletions are slow to allocate). What differs per session (the
authorized key, its directory, the job's pids, the shells to try) comes on sshd's command
line (``session_argv``) and in the session's own ``authorized_keys``.
"""
from __future__ import annotations

import os
import re
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..common.files import write_private
from ..common.safepath import UnsafePath, check_directory

from .sshd import SshdHost
from .stderr import log

SSHD_CONFIG = "sshd_config"
SETUP_SCRIPT = "setup.sh"
JOB_ENVIRONMENT = "job_env.sh"
SESSION_ENV = "CONDOR_JOB_PROXY_SESSION"   # in a session's environment: its directory
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The setup script's own variables, set before it sources the job's environment (which must
# not overwrite them), and what it exports after.
_SCRIPT_NAMES = frozenset({"login_shell", "candidate", "cjp_in_login_shell", "cjp_shared",
                           "cjp_session", "cjp_pids", "_CONDOR_JOB_PIDS", SESSION_ENV})
# A shell to try goes on sshd's command line and through whatever login shell runs
# ForceCommand (csh, fish, ...): plain path characters only.
_SHELL_PATH = re.compile(r"/[A-Za-z0-9_./+-]*")
# Login shells that can source the POSIX setup script themselves. sshd runs ForceCommand with
# the login shell, so sourcing it there, and running the command in that same shell, starts
# one shell per command as plain sshd does, not three (login shell, /bin/sh, login shell).
_BOURNE_SHELLS = frozenset({"sh", "bash", "dash", "ksh", "ksh93", "mksh", "zsh", "ash"})
SSHD_CONFIG_TEMPLATE = """\
# sshd for the sessions of one condor-job-proxy job; each is started as `sshd -i` by the
# job's starter, with its own AuthorizedKeysFile and ForceCommand on its command line.
HostKey {dir}/host_key
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
    host_key_public: str
    host: SshdHost
    pids: Callable[[], list[int]]   # the job's main pid first, then its other live processes
    directory: Path   # the starter's private directory: the host key, the shared files, sessions
    open_files: tuple[int, int] | None = None   # the job's RLIMIT_NOFILE (the starter raised its)
    # the job's processes outside the main pid's tree (a container runtime's), see container.py
    adopted: Callable[[], list[int]] = lambda: []


def write_shared_files(context: JobContext) -> None:
    """Write the files every session of the job uses (the host key is there already)."""
    d = context.directory
    host = context.host
    no_terminal = no_terminal_line(context)
    if no_terminal:
        write_private(d / "banner", f"{no_terminal}\n", 0o600)
    write_private(d / SSHD_CONFIG, SSHD_CONFIG_TEMPLATE.format(
        dir=d, permit_tty="no" if no_terminal else "yes",
        banner=d / "banner" if no_terminal else "none"), 0o600)
    write_private(d / JOB_ENVIRONMENT, environment_script(context.environment), 0o600)
    write_private(d / SETUP_SCRIPT, _setup_script(context), 0o700)
    if host.nss_wrapper:
        write_private(d / "passwd", host.passwd_line + "\n", 0o600)
        write_private(d / "group", host.group_line + "\n", 0o600)


def session_argv(context: JobContext, session_dir: Path, job_pids: list[int],
                 shells: list[str], host_cert: Path | None = None) -> list[str]:
    """``sshd -i`` for one session: the shared config, plus the session's own key file and
    ForceCommand (sshd takes the first value of each, and the command line comes first), and
    the client's certificate of the shared host key, if it sent one."""
    return [context.host.sshd or "sshd", "-i", "-e", "-f", str(context.directory / SSHD_CONFIG),
            "-o", f"AuthorizedKeysFile {session_dir}/authorized_keys",
            *(["-o", f"HostCertificate {host_cert}"] if host_cert else []),
            "-o", f"ForceCommand {_force_command(context, session_dir, job_pids, shells)}"]


def usable_shells(shells: object) -> list[str]:
    """The client's shells to try that are plain absolute paths (at most 16)."""
    if not isinstance(shells, list):
        return []
    return [s for s in shells if isinstance(s, str) and _SHELL_PATH.fullmatch(s)][:16]


def no_terminal_line(context: JobContext) -> str | None:
    reason = context.host.no_terminal
    return f"condor-job-proxy: job {context.job} {reason}" if reason else None


def _force_command(context: JobContext, session_dir: Path, job_pids: list[int],
                   shells: list[str]) -> str:
    """The setup script with the session's arguments: its directory, the job's pids (the
    main one first) and the shells to try before the login shell."""
    q = shlex.quote
    args = " ".join([q(str(session_dir)), q(" ".join(map(str, job_pids))), *map(q, shells)])
    script = q(str(context.directory / SETUP_SCRIPT))
    if os.path.basename(context.host.login_shell) in _BOURNE_SHELLS:
        return f"cjp_in_login_shell=1; set -- {args}; . {script}"
    return f"/bin/sh {script} {args}"


def environment_script(environment: dict[str, str]) -> str:
    """The job's environment as export lines for sh (names a shell can set only)."""
    return "".join(f"export {name}={shlex.quote(value)}\n"
                   for name, value in environment.items()
                   if _NAME.fullmatch(name) and name not in _SCRIPT_NAMES)


def _no_terminal_notice(context: JobContext) -> tuple[str, str]:
    """Shell lines that repeat the banner's line for an interactive login without a
    terminal that came over a shared connection (ControlMaster): only the connection's
    first client showed the banner. The first session on this sshd marks that it ran."""
    line = no_terminal_line(context)
    if not line:
        return "", ""
    return ('mkdir "$cjp_session/first-session-ran" 2>/dev/null || cjp_shared=1\n',
            f"[ -n \"$cjp_shared\" ] && [ ! -t 0 ] && printf '%s\\n' {shlex.quote(line)} >&2\n"
            "        ")


def _home_fallback(context: JobContext) -> Path:
    """The HOME of sessions of a job that has none: its working directory, unless another
    user could swap that directory (a group-writable project space): a shell reads its
    start-up files from HOME, so then the starter's own private directory."""
    try:
        check_directory(context.cwd, "the job's working directory")
    except UnsafePath as err:
        log(f"{err}: sessions of a job without a HOME get {context.directory} as HOME")
        return context.directory
    return Path(context.cwd)


def _setup_script(context: JobContext) -> str:
    """The setup, as sshd would do it: a command runs in the shell; with none, the shell reads
    stdin. On a terminal that is an interactive shell after the welcome (HTCondor's); without
    one (``ssh job < script``, VS Code, Ansible), a plain shell that reads the commands quietly,
    so stdout carries only their output. Neither is a login shell: /etc/profile would put the
    system's PATH over the job's."""
    q = shlex.quote
    cwd = q(context.cwd)
    home = q(str(_home_fallback(context)))
    sftp = q(context.host.sftp_server or "/usr/lib/openssh/sftp-server")
    welcome = q(f"Welcome to job {context.job} on {socket.gethostname()}!")
    mark_session, no_terminal_notice = _no_terminal_notice(context)
    return f"""\
# Session setup for job {context.job}: sshd runs this as ForceCommand, with the session's
# directory, the job's pids and the shells to try as arguments.
login_shell=$SHELL
cjp_session=$1
cjp_pids=$2
shift 2
{mark_session}. {q(str(context.directory / JOB_ENVIRONMENT))}
export _CONDOR_JOB_PIDS="$cjp_pids" {SESSION_ENV}="$cjp_session"
cd {cwd} || {{ echo "cannot enter the job's working directory" {cwd} >&2; exit 1; }}
if [ -z "$HOME" ] || [ ! -d "$HOME" ] || [ ! -w "$HOME" ]; then HOME={home}; fi
export HOME
SHELL=/bin/sh
for candidate in "$@" "$login_shell"; do
    if [ -x "$candidate" ]; then SHELL=$candidate; break; fi
done
export SHELL
set --
case $SSH_ORIGINAL_COMMAND in
    internal-sftp) exec {sftp} ;;
    "") {no_terminal_notice}if [ -t 0 ]; then
            printf '%s\\nYour condor job is running with pid(s) %s.\\n' {welcome} "$_CONDOR_JOB_PIDS"
            exec "$SHELL" -i
        fi
        exec "$SHELL" ;;
esac
if [ -n "$cjp_in_login_shell" ] && [ "$SHELL" = "$login_shell" ]; then
    unset cjp_in_login_shell login_shell candidate cjp_shared cjp_session cjp_pids
    eval "$SSH_ORIGINAL_COMMAND"
else
    exec "$SHELL" -c "$SSH_ORIGINAL_COMMAND"
fi
"""

