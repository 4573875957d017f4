"""The ProxyCommand's fast client: ask the user's connect daemon for the job's socket.

    python -S -E -s .../proxycmd/daemon/quick.py SOCKET_BASE PYTHON -m condor_job_proxy ... connect ... %n %r
    python -S -E -s .../proxycmd/daemon/quick.py --private-dir DIR     (see private_dir)

(quick.c beside it is the same client compiled, used when setup could build it.)

Run as a script with no site-packages and only built-in modules, it starts in a bare
interpreter's time. It sends the full proxy command and the environment it depends on to
the daemon (condor_job_proxy/proxycmd/daemon/server.py), which does the ProxyCommand's whole
work and answers with the connected socket (passed on to ssh; relayed for any other caller), or
with the line and status to exit with, or with "do it yourself". In the last case, and when no
daemon answers, this process becomes the full proxy command (exec), which starts a daemon for
next time when none was running.

Nothing here may import the rest of the package: the daemon imports the constants below.
"""
import _socket
import _thread
import posix
import sys

PROTOCOL = b"1"
# The same request from a client that will relay the socket rather than hand it to OpenSSH: its
# caller (asyncssh) may need the session's host key certified (condor_job_proxy/proxycmd/hostca.py).
RELAY_PROTOCOL = b"1r"
REPLY_LIMIT = 65536
CHUNK = 64 * 1024     # condor_job_proxy.proxycmd.handoff.CHUNK
FALLBACK, FAILED, SOCKET = b"F", b"E", b"K"
# The proxy's behaviour depends on these variables; a daemon serves only requests whose values
# match its own, else the full proxy command runs with the caller's environment.
CONTEXT_NAMES = (b"PATH", b"HOME", b"TMPDIR", b"SSH_AUTH_SOCK", b"XDG_CONFIG_HOME",
                 b"XDG_STATE_HOME", b"XDG_RUNTIME_DIR")
CONTEXT_PREFIXES = (b"CONDOR_", b"_CONDOR_", b"PYTHON", b"AWS_")
# The context's hash: the entries joined by NUL, read as a little-endian number, modulo this
# (a Mersenne prime: quick.c computes the same in 64-bit arithmetic).
HASH_MODULUS = (1 << 61) - 1
# Set for the full proxy command when no daemon answered: it starts one after connecting.
START_ENV = b"CONDOR_JOB_PROXY_START_DAEMON"
REFUSAL_ENV = b"CONDOR_JOB_PROXY_REFUSAL"   # the line to show through ssh (refusal.py)
_S_IFMT, _S_IFSOCK, _S_IFCHR, _S_IFDIR = 0o170000, 0o140000, 0o020000, 0o040000


def context(environ: dict) -> list:
    """The ``NAME=value`` entries of ``environ`` (bytes) that a daemon must share, sorted."""
    return sorted(name + b"=" + value for name, value in environ.items()
                  if (name in CONTEXT_NAMES or name.startswith(CONTEXT_PREFIXES))
                  and name != START_ENV)


def socket_path(base: str, entries: list) -> str:
    """The daemon socket for this context (a name, not a secret: the daemon compares the
    context itself)."""
    number = int.from_bytes(b"\0".join(entries), "little") % HASH_MODULUS
    return f"{base}-{number & 0xFFFFFFFFFFFF:012x}.sock"     # 48 bits: socket paths are short


def main(argv: list) -> None:
    if len(argv) == 3 and argv[1] == "--private-dir":
        posix._exit(private_dir(argv[2], quiet=False))
    entries = context(posix.environ)
    daemon_socket, command = socket_path(argv[1], entries), argv[2:]
    pass_fd = ssh_takes_fd()
    try:
        channel = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        channel.settimeout(60.0)
        channel.connect(daemon_socket)
    except OSError:
        _become(command, _daemon_to_start(daemon_socket))
    if not _peer_is_us(channel):
        _become(command, None)
    try:
        answer, fds = _ask(channel, command, entries, pass_fd)
    except OSError:
        _become(command, None)          # a daemon that stopped half way: a daemon is there
    if answer[:1] == SOCKET and fds:
        if len(answer) > 1:             # a line for the user comes with it
            _report(answer[1:] + _rest(channel, REPLY_LIMIT - len(answer)))
        if not pass_fd:
            _relay(_socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fds[0]))
            posix._exit(0)
        try:
            _give_to_ssh(fds[0])
        except OSError:
            posix._exit(255)            # ssh went away; it says so itself
        posix._exit(0)
    if answer[:1] == FAILED:
        answer += _rest(channel, REPLY_LIMIT - len(answer))
        status, _, line = answer[1:].partition(b"\n")
        if pass_fd or _stderr_hidden():  # the full command hands ssh a refusal server
            _become(command, None, line.split(b"\n")[0])
        _report(line)
        posix._exit(int(status))
    _become(command, None)


def ssh_takes_fd() -> bool:
    """condor_job_proxy.proxycmd.handoff.stdout_takes_fd: OpenSSH with ProxyUseFdpass gives one
    socketpair as both stdin and stdout. Node's child_process.spawn gives each stream a socketpair of its
    own and throws a passed fd away; it, paramiko and any pipe get the relay."""
    try:
        stdin, stdout = posix.fstat(0), posix.fstat(1)
    except OSError:
        return False
    return ((stdout.st_mode & _S_IFMT) == _S_IFSOCK
            and (stdin.st_dev, stdin.st_ino) == (stdout.st_dev, stdout.st_ino))


def private_dir(directory: str, quiet: bool) -> int:
    """quick.c's private_dir: 0 when ``directory`` is (or, created 0700, now is) a real
    directory of ours that no one else may enter; else 1, and the reason on stderr unless
    ``quiet``. ssh runs `--private-dir` before it uses a socket in /tmp, and connects without
    sharing when it fails."""
    try:
        try:
            info = posix.lstat(directory)
        except FileNotFoundError:
            try:
                posix.mkdir(directory, 0o700)
            except FileExistsError:
                pass
            info = posix.lstat(directory)
    except OSError as err:
        problem = f": {err.strerror};"
    else:
        if (info.st_mode & _S_IFMT) != _S_IFDIR or info.st_uid != posix.getuid():
            problem = " is not a directory of yours:"
        elif info.st_mode & 0o077:
            problem = " is open to other users:"
        else:
            return 0
    if not quiet:
        posix.write(2, f"condor-job-proxy: {directory}{problem} connecting without a shared "
                       "connection (remove it, or run: condor-job-proxy doctor)\n".encode())
    return 1


def _daemon_to_start(daemon_socket: str):
    """The socket to have the full command start a daemon at, if its directory is ours."""
    directory = daemon_socket.rpartition("/")[0]
    return daemon_socket if directory and private_dir(directory, quiet=True) == 0 else None


def _peer_is_us(channel) -> bool:
    """Whether the daemon runs as us: another user's socket must never get our request."""
    try:
        creds = channel.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    except OSError:
        return False
    return int.from_bytes(creds[4:8], sys.byteorder) == posix.getuid()


def _ask(channel, command: list, entries: list, pass_fd: bool = True) -> tuple:
    words = [arg.encode("utf-8", "surrogateescape") for arg in command]
    request = b"\0".join([PROTOCOL if pass_fd else RELAY_PROTOCOL, str(len(words)).encode(),
                          *words, *entries])
    channel.sendall(request)
    channel.shutdown(_socket.SHUT_WR)
    answer, ancillary, _, _ = channel.recvmsg(REPLY_LIMIT, _socket.CMSG_SPACE(4))
    fds = [int.from_bytes(data[:4], sys.byteorder) for level, kind, data in ancillary
           if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS]
    return answer, fds


def _rest(channel, limit: int) -> bytes:
    chunks = []
    try:
        while limit > 0 and (chunk := channel.recv(limit)):
            chunks.append(chunk)
            limit -= len(chunk)
    except OSError:
        pass          # what came is the line; a reset after it changes nothing
    return b"".join(chunks)


def _report(line: bytes) -> None:
    """condor_job_proxy.proxycmd.errors.report: stderr, and the terminal when ssh put stderr on
    /dev/null."""
    posix.write(2, line)
    if not _stderr_hidden():
        return
    try:
        terminal = posix.open("/dev/tty", posix.O_WRONLY | posix.O_NOCTTY)
    except OSError:
        return
    posix.write(terminal, line)
    posix.close(terminal)


def _stderr_hidden() -> bool:
    """condor_job_proxy.proxycmd.errors.stderr_hidden: ssh put our stderr on /dev/null
    (ControlPersist)."""
    try:
        err, null = posix.fstat(2), posix.stat("/dev/null")
    except OSError:
        return False
    return (err.st_mode & _S_IFMT) == _S_IFCHR and err.st_rdev == null.st_rdev


def _give_to_ssh(fd: int) -> None:
    """ProxyUseFdpass: ssh's end of our stdout takes the connection (SCM_RIGHTS)."""
    to_ssh = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, posix.dup(1))
    to_ssh.sendmsg([b"\0"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                              fd.to_bytes(4, sys.byteorder))])


def _relay(connection) -> None:
    """condor_job_proxy.proxycmd.handoff.relay, spelled out here (this client imports nothing of
    the package): stdin -> the connection, then a half-close so the job's sshd sees the end; the
    connection -> stdout until the job side closes."""
    def upstream() -> None:
        _pump(0, connection.fileno())
        try:
            connection.shutdown(_socket.SHUT_WR)
        except OSError:
            pass
    _thread.start_new_thread(upstream, ())
    _pump(connection.fileno(), 1)


def _pump(source: int, sink: int) -> None:
    """Copy ``source`` to ``sink`` until end of file or an error on either side."""
    try:
        while data := posix.read(source, CHUNK):
            while data:
                data = data[posix.write(sink, data):]
    except OSError:
        pass


def _become(command: list, start_daemon_at, refusal: bytes | None = None) -> None:
    """Run the full proxy command in this process; it starts a daemon when asked to, and
    with ``refusal`` (the daemon's line) it only shows that line, connecting nowhere again."""
    environ = dict(posix.environ)
    environ.pop(START_ENV, None)
    environ.pop(REFUSAL_ENV, None)
    if start_daemon_at is not None:
        environ[START_ENV] = start_daemon_at.encode("utf-8", "surrogateescape")
    if refusal:
        environ[REFUSAL_ENV] = refusal
    try:
        posix.execve(command[0], command, environ)
    except OSError as err:
        posix.write(2, f"condor-job-proxy: cannot run {command[0]}: {err.strerror}\n".encode())
        posix._exit(255)


if __name__ == "__main__":
    main(sys.argv)
