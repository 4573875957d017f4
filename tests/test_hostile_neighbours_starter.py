"""Hostile neighbours of a job's starter: other local accounts that flood its port, fill the
disk it writes to, or plant the keys file it was told to read. The victim runs its job under
its own account, sharing a sticky world-writable queue with the attacker (another uid); the
job must live through every attack, and its owner must get in again once it stops."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from accounts import Account, account, ensure_venv
from conftest import wait_until
from handshake import finish, open_channel, open_fds, public_line, send_hello, threads
from jobstart import end_job, wait_for_job_line
from condor_job_proxy.common import sshsig

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="test accounts and tmpfs need root")
FLOOD = 1500   # connections: more than the default open-file limit (1024) of the victim's starter


@dataclass
class Neighbours:
    victim: Account
    attacker: Account
    made: list[Path]

    def directory(self, kind: str, mode: int, owner: Account | None = None) -> Path:
        """A fresh directory every account can reach (pytest's tmp_path is root's alone)."""
        path = Path(tempfile.mkdtemp(prefix=f"cjp-hn-{kind}-"))
        os.chmod(path, mode)
        if owner:
            shutil.chown(path, owner.name)
        self.made.append(path)
        return path


@dataclass
class VictimJob:
    host: str
    process: subprocess.Popen
    err_file: Path
    queue: Path
    env: dict

    @property
    def id(self) -> str:
        return self.host.removeprefix("job-")

    def record(self) -> dict:
        return json.loads((self.queue / f"{self.id}.json").read_text())

    def job_pid(self) -> int:
        return self.record()["pids"][0]

    def starter_pid(self) -> int:
        return self.record()["starter_pid"]   # (self.process is runuser, its parent)


@pytest.fixture(scope="module")
def neighbours():
    ensure_venv()
    victim, attacker = account("victim"), account("attacker")
    for user in (victim, attacker):
        # Sessions end when ssh does (no shared connections), so tests see them go.
        user.run("sh", "-c", "mkdir -p ~/.config/condor-job-proxy && "
                 "echo 'control_master = false' > ~/.config/condor-job-proxy/config.toml")
        assert user.run("condor-job-proxy", "setup", "--yes").returncode == 0
    made: list[Path] = []
    yield Neighbours(victim, attacker, made)
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def victims_job(neighbours: Neighbours, *starter_args: str, queue: Path | None = None,
                tmpdir: Path | None = None, wrapper: tuple[str, ...] = ()):
    """The victim's job (``sleep``) under its own starter (run by ``wrapper``, if any), in a
    shared 1777 queue."""
    victim = neighbours.victim
    queue = queue or neighbours.directory("queue", 0o1777)
    tmpdir = tmpdir or neighbours.directory("tmp", 0o700, victim)
    cwd = neighbours.directory("cwd", 0o700, victim)
    env = {"CONDOR_JOB_PROXY_QUEUE": str(queue), "TMPDIR": str(tmpdir)}
    err_file = cwd.parent / f"{cwd.name}.starter.err"
    with open(err_file, "wb") as err:
        process = victim.popen(*wrapper, "condor-job-starter", "run", *starter_args, "--",
                               "sleep", "900",
                               env=env, cwd=cwd, stderr=err, stdin=subprocess.DEVNULL)
    try:
        host = f"job-{wait_for_job_line(process, err_file, timeout=30)}"
        assert victim.run("condor-job-proxy", "config", "refresh", env=env).returncode == 0
        assert neighbours.attacker.run("condor-job-proxy", "config", "refresh",
                                       env=env).returncode == 0
        yield VictimJob(host, process, err_file, queue, env)
    finally:
        end_job(process)
        err_file.unlink(missing_ok=True)
        for user in (victim, neighbours.attacker):   # their connect daemons, for this queue
            user.run("condor-job-proxy", "daemon", "--stop", env=env)


def ssh(user: Account, job: VictimJob, command: str = "true", login: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    return user.run("ssh", "-o", "BatchMode=yes", *(["-l", login] if login else []), job.host,
                    command, env=job.env, timeout=timeout)


def owner_gets_in_at_once(neighbours: Neighbours, job: VictimJob) -> None:
    """Once a flood has stopped, the job's owner connects as if there had been none."""
    started = time.monotonic()
    result = ssh(neighbours.victim, job, "echo in")
    assert result.returncode == 0 and result.stdout == b"in\n", result.stderr
    assert time.monotonic() - started < 10


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except OSError:
        return False


def open_files_limit(pid: int) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return soft, hard
    raise AssertionError("no open-file limit")


# --- 2: connections nobody authenticated ---------------------------------------------------------

_FLOODER = textwrap.dedent("""\
    import resource, socket, sys, time
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held, end = [], time.monotonic() + 7
    for number in range(count):
        if time.monotonic() > end:
            break
        try:
            sock = socket.create_connection((host, port), timeout=0.5)
            if number % 2:
                sock.sendall(b"\\x00\\x00")   # half a frame's length, then nothing: a slow loris
            held.append(sock)
        except OSError:
            pass
    print(len(held), flush=True)
    sys.stdin.read()   # hold them until told to go
""")


def test_a_flood_of_idle_connections_from_another_user_neither_ends_the_job_nor_locks_out_its_owner(
        neighbours: Neighbours) -> None:
    with victims_job(neighbours) as job:
        starter, job_pid = job.starter_pid(), job.job_pid()
        job_limit = open_files_limit(job_pid)
        assert int(job_limit[0]) < FLOOD   # the default limit, which the starter had too
        host, port = job.record()["starter_address"].rsplit(":", 1)
        flooder = neighbours.attacker.popen("/usr/bin/python3", "-c", _FLOODER, host, port,
                                            str(FLOOD), stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE)
        try:
            assert int(flooder.stdout.readline()) > int(job_limit[0])   # more than it could hold
            time.sleep(5)   # accounting writes the record and the process list every 2 s
            assert alive(starter) and alive(job_pid), job.err_file.read_text()
            # What the flood holds in the starter is bounded, whatever the flood's size.
            assert threads(starter) < 200 and open_fds(starter) < 200, \
                (threads(starter), open_fds(starter))
            # A session start is accounted for and published: a write with the flood still on.
            assert wait_until(lambda: ssh(neighbours.victim, job, timeout=30).returncode == 0,
                              timeout=30), job.err_file.read_text()
        finally:
            flooder.stdin.close()
            flooder.wait(30)
        owner_gets_in_at_once(neighbours, job)
        assert alive(starter) and alive(job_pid) and job.record()["state"] == "running"
        assert open_files_limit(starter) == (job_limit[1], job_limit[1])   # raised its own
        assert open_files_limit(job_pid) == job_limit                      # not the job's


def test_a_flood_past_a_low_hard_open_file_limit_is_waited_out(neighbours: Neighbours) -> None:
    """A site may set the hard limit low: then accept() and the bookkeeping run out of file
    descriptors during the flood, which the starter waits out; it does not stop accepting."""
    with victims_job(neighbours, wrapper=("prlimit", "--nofile=100:100", "--")) as job:
        starter, job_pid = job.starter_pid(), job.job_pid()
        host, port = job.record()["starter_address"].rsplit(":", 1)
        flooder = neighbours.attacker.popen("/usr/bin/python3", "-c", _FLOODER, host, port,
                                            "400", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert int(flooder.stdout.readline()) > 100
            time.sleep(5)   # accounting ticks, each of which needs file descriptors
            assert alive(starter) and alive(job_pid), job.err_file.read_text()
        finally:
            flooder.stdin.close()
            flooder.wait(30)
        owner_gets_in_at_once(neighbours, job)
        assert "Too many open files (waiting it out)" in job.err_file.read_text()


def test_an_owners_handshake_is_not_pushed_out_by_another_users_flood(
        neighbours: Neighbours) -> None:
    """Connections in the handshake are bounded, but a flood from one account pushes out
    only that account's own: the owner's, opened first and slow to go on, still gets in."""
    with victims_job(neighbours) as job:
        record = job.record()
        host, port = record["starter_address"].rsplit(":", 1)
        channel = open_channel((host, int(port)))   # root's uid, not the attacker's
        flooder = neighbours.attacker.popen("/usr/bin/python3", "-c", _FLOODER, host, port,
                                            str(FLOOD), stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE)
        try:
            assert int(flooder.stdout.readline()) > int(open_files_limit(job.job_pid())[0])
            key = neighbours.victim.home / ".config" / "condor-job-proxy" / "id_ed25519"
            send_hello(channel, job.id, record["owner"], public_line(key))
            assert channel.receive("challenge")["type"] == "challenge"
            signed = channel.transcript.signed_data("client")
            channel.send("auth", sig=sshsig.sign(str(key), signed))
            assert finish(channel, record["starter_key"]).accepted
        finally:
            channel.sock.close()
            flooder.stdin.close()
            flooder.wait(30)


# --- 3: a full or read-only disk -----------------------------------------------------------------

@contextmanager
def small_filesystem(neighbours: Neighbours, options: str = "size=4m"):
    """A small tmpfs, sticky and writable by everyone (like /tmp), that another user can fill."""
    where = neighbours.directory("small", 0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"{options},mode=1777", "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


@pytest.mark.parametrize("attack", ["fills the queue", "fills TMPDIR",
                                    "makes the queue read-only", "uses up the queue's inodes"])
def test_a_full_or_read_only_disk_refuses_new_sessions_but_the_job_and_open_ones_go_on(
        neighbours: Neighbours, attack: str) -> None:
    victim, attacker = neighbours.victim, neighbours.attacker
    inodes = "inodes" in attack
    with small_filesystem(neighbours, "size=4m,nr_inodes=64" if inodes else "size=4m") as small:
        if "TMPDIR" in attack:
            queue, tmpdir = None, small / "victim-tmp"
            tmpdir.mkdir(mode=0o700)
            shutil.chown(tmpdir, victim.name)
            where = f"no space left in the job's TMPDIR ({tmpdir})"
        else:
            queue, tmpdir = small / "queue", None
            queue.mkdir(mode=0o1777)
            os.chmod(queue, 0o1777)
            where = (f"the queue directory ({queue}) is not writable" if "read-only" in attack
                     else f"no space left in the queue directory ({queue})")
        with victims_job(neighbours, queue=queue, tmpdir=tmpdir) as job:
            starter, job_pid = job.starter_pid(), job.job_pid()
            session = victim.popen("ssh", "-o", "BatchMode=yes", job.host,
                                   "while read line; do echo got $line; done",
                                   env=job.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            session.stdin.write(b"one\n")
            session.stdin.flush()
            assert session.stdout.readline() == b"got one\n"
            if "read-only" in attack:
                subprocess.run(["mount", "-o", "remount,ro", str(small)], check=True)
            elif inodes:
                attacker.run("sh", "-c", f"mkdir {small}/filler && cd {small}/filler && "
                             "i=0; while : > f$i 2>/dev/null; do i=$((i+1)); done")
            else:
                attacker.run("dd", "if=/dev/zero", f"of={small}/filler", "bs=64k")
            result = ssh(victim, job)
            assert result.returncode == 255
            assert result.stderr.decode().splitlines()[0] == \
                f"condor-job-proxy: job {job.id}: cannot open a session: {where}", result.stderr
            time.sleep(5)   # accounting ticks, each of which writes
            assert alive(starter) and alive(job_pid), job.err_file.read_text()
            session.stdin.write(b"two\n")   # the open session goes on
            session.stdin.flush()
            assert session.stdout.readline() == b"got two\n"
            if "read-only" in attack:
                subprocess.run(["mount", "-o", "remount,rw", str(small)], check=True)
            elif inodes:
                shutil.rmtree(small / "filler")
            else:
                (small / "filler").unlink()
            result = ssh(victim, job)   # at once: no waiting for the next accounting write
            assert result.returncode == 0, result.stderr
            session.stdin.close()
            assert session.wait(10) == 0
            assert wait_until(lambda: job.record()["sessions"] == 0, timeout=10)
            assert alive(starter) and alive(job_pid)
            assert not list(job.queue.glob(".*.tmp"))   # no half-written record left behind


# --- 5: the keys files the starter is told to read -----------------------------------------------

def _start_fails(neighbours: Neighbours, keys: Path) -> str:
    result = neighbours.victim.run(
        "condor-job-starter", "run", "--authorized-keys-file", str(keys), "--", "sleep", "900",
        env={"CONDOR_JOB_PROXY_QUEUE": str(neighbours.directory("queue", 0o1777))},
        cwd=neighbours.directory("cwd", 0o700, neighbours.victim), timeout=30)
    assert result.returncode == 1, result.stderr
    return result.stderr.decode()


def test_a_missing_authorized_keys_file_stops_the_starter_before_anyone_can_create_it(
        neighbours: Neighbours) -> None:
    keys = Path(tempfile.gettempdir()) / f"cjp-hn-keys-{os.urandom(4).hex()}.pub"
    assert _start_fails(neighbours, keys) == \
        f"condor-job-starter: authorized keys file {keys} does not exist\n"
    assert not keys.exists()


def test_a_keys_file_another_user_owns_or_can_write_stops_the_starter(
        neighbours: Neighbours) -> None:
    planted = neighbours.directory("planted", 0o755, neighbours.attacker) / "keys.pub"
    neighbours.attacker.run("sh", "-c", f"condor-job-proxy pubkey > {planted}")
    uid = planted.stat().st_uid
    assert _start_fails(neighbours, planted) == (
        f"condor-job-starter: authorized keys file {planted} is owned by uid {uid}, "
        "not by the job's user or root\n")
    open_dir = neighbours.directory("open", 0o777, neighbours.victim)   # writable, not sticky
    keys = open_dir / "keys.pub"
    neighbours.victim.run("sh", "-c", f"condor-job-proxy pubkey > {keys}")
    assert _start_fails(neighbours, keys) == (
        f"condor-job-starter: authorized keys file {keys} is in {open_dir}, which is "
        "writable by group or others\n")


def test_a_keys_file_replaced_by_another_user_after_start_lets_nobody_in(
        neighbours: Neighbours) -> None:
    """The check is made on each read: the victim's file in /tmp goes, the attacker plants
    one with their own key at the same path; the attacker is still a stranger."""
    victim, attacker = neighbours.victim, neighbours.attacker
    keys = Path(tempfile.gettempdir()) / f"cjp-hn-keys-{os.urandom(4).hex()}.pub"
    victim.run("sh", "-c", f"condor-job-proxy pubkey > {keys}")
    try:
        with victims_job(neighbours, "--authorized-keys-file", str(keys)) as job:
            victim.run("rm", str(keys))
            attacker.run("sh", "-c", f"umask 022; condor-job-proxy pubkey > {keys}")
            result = ssh(attacker, job, "id -un", login=victim.name)
            assert result.returncode == 255, result.stdout
            assert "not the job's owner" in result.stderr.decode()
            assert wait_until(lambda: f"authorized keys file {keys} is owned by uid"
                              in job.err_file.read_text())
    finally:
        keys.unlink(missing_ok=True)


def test_a_symlink_another_user_owns_in_tmp_is_no_keys_file(neighbours: Neighbours) -> None:
    """The attacker's link in sticky /tmp points at a file of the victim's today; they may
    point it anywhere tomorrow, so it is refused though its target is the victim's own."""
    victim, attacker = neighbours.victim, neighbours.attacker
    target = neighbours.directory("ownkeys", 0o755, victim) / "keys.pub"
    victim.run("sh", "-c", f"condor-job-proxy pubkey > {target}")
    link = Path(tempfile.gettempdir()) / f"cjp-hn-link-{os.urandom(4).hex()}.pub"
    assert attacker.run("ln", "-s", str(target), str(link)).returncode == 0
    try:
        assert _start_fails(neighbours, link) == (
            f"condor-job-starter: authorized keys file {link} goes through the symbolic link "
            f"{link}, owned by uid {link.lstat().st_uid}, not by the job's user or root\n")
    finally:
        link.unlink(missing_ok=True)


def test_only_bare_key_lines_of_a_keys_file_let_anyone_in(neighbours: Neighbours) -> None:
    """A file of the victim's in which the attacker's key appears otherwise than as a bare
    key line (a known_hosts line, a log line, a line with options the starter cannot apply)
    lets the attacker in by none of those lines; a bare line of the victim's own still works."""
    victim, attacker = neighbours.victim, neighbours.attacker
    theirs = attacker.run("condor-job-proxy", "pubkey").stdout.decode().split()
    mine = victim.run("condor-job-proxy", "pubkey").stdout.decode().strip()
    key = f"{theirs[0]} {theirs[1]}"
    keys = neighbours.directory("textkeys", 0o755, victim) / "keys"
    victim.run("sh", "-c", f"cat > {keys}", input="\n".join([
        f"job-2.0,127.0.0.1 {key}",
        f"2026-12-06 log: user pasted {key} into the chat",
        f'restrict,command="/bin/echo RESTRICTED" {key}',
        f'from="10.9.9.9" {key}',
        f'expiry-time="20000101" {key}',
        mine, ""]).encode())
    with victims_job(neighbours, "--authorized-keys-file", str(keys)) as job:
        result = ssh(attacker, job, "id -un", login=victim.name)
        assert result.returncode == 255 and result.stdout == b"", result.stdout
        assert "not the job's owner" in result.stderr.decode()
        own = ssh(victim, job, "id -un")
        assert own.stdout.decode().strip() == victim.name, own.stderr
        assert wait_until(lambda: "5 line(s) with options" in job.err_file.read_text())


def test_a_keys_path_climbing_back_past_another_users_link_is_refused(
        neighbours: Neighbours) -> None:
    """`/tmp/link/../victim/keys`: the kernel follows the attacker's link before the `..`,
    so the attacker chooses what the path means, now and on every later read."""
    victim, attacker = neighbours.victim, neighbours.attacker
    home = neighbours.directory("linkhome", 0o755, victim)
    (home / "keys").write_text(victim.run("condor-job-proxy", "pubkey").stdout.decode())
    shutil.chown(home / "keys", victim.name)
    link = Path(tempfile.gettempdir()) / f"cjp-hn-ld-{os.urandom(4).hex()}"
    assert attacker.run("ln", "-s", str(home), str(link)).returncode == 0
    try:
        path = f"{link}/../{home.name}/keys"
        assert f"goes through the symbolic link {link}, owned by uid" in \
            _start_fails(neighbours, Path(path))
    finally:
        link.unlink(missing_ok=True)


def test_a_key_after_a_carriage_return_inside_a_line_lets_nobody_in(
        neighbours: Neighbours) -> None:
    """sshd ends a line at a newline only: a CR, form feed or U+2028 inside a line of text
    the attacker controls does not start a key line."""
    victim, attacker = neighbours.victim, neighbours.attacker
    theirs = " ".join(attacker.run("condor-job-proxy", "pubkey").stdout.decode().split()[:2])
    keys = neighbours.directory("crkeys", 0o755, victim) / "keys"
    text = "".join(f"log: user said {sep}{theirs}\n" for sep in ("\r", "\x0c", "\u2028", "\x85"))
    victim.run("sh", "-c", f"cat > {keys}", input=text.encode())
    with victims_job(neighbours, "--authorized-keys-file", str(keys)) as job:
        result = ssh(attacker, job, "id -un", login=victim.name)
        assert result.returncode == 255 and result.stdout == b"", result.stdout


@pytest.mark.parametrize("how", ["its parent is the attacker's", "through the attacker's link"])
def test_a_tmpdir_or_queue_another_user_controls_is_refused(neighbours: Neighbours,
                                                            how: str) -> None:
    """Whoever can rename a directory on the way (or re-point a link on it) can swap the
    sessions' setup script or the job's record: the starter will not start there."""
    victim, attacker = neighbours.victim, neighbours.attacker
    theirs = neighbours.directory("theirs", 0o755, attacker)
    inner = theirs / "inner"
    inner.mkdir(mode=0o1777)
    inner.chmod(0o1777)
    link = Path(tempfile.gettempdir()) / f"cjp-hn-tl-{os.urandom(4).hex()}"
    try:
        if how == "through the attacker's link":
            root_owned = neighbours.directory("rootsticky", 0o1777)
            assert attacker.run("ln", "-s", str(root_owned), str(link)).returncode == 0
            place = link
        else:
            place = inner
        for variable, what in (("TMPDIR", "TMPDIR"), ("CONDOR_JOB_PROXY_QUEUE", "queue directory")):
            env = {"CONDOR_JOB_PROXY_QUEUE": str(neighbours.directory("queue", 0o1777)),
                   variable: str(place)}
            result = victim.run("condor-job-starter", "run", "--", "true", env=env, timeout=30,
                                cwd=neighbours.directory("cwd", 0o700, victim))
            assert result.returncode == 1, result
            line = result.stderr.decode()
            assert line.startswith(f"condor-job-starter: {what} {place} ") and \
                "another user could" in line and line.count("\n") == 1, line
    finally:
        link.unlink(missing_ok=True)


def test_a_keys_link_in_a_directory_another_user_owns_is_refused(neighbours: Neighbours) -> None:
    """The link is the victim's, but the attacker owns its directory (sticky or not): they may
    rename another link of the victim's into its place."""
    victim = neighbours.victim
    keys = neighbours.directory("safekeys", 0o755, victim) / "keys"
    victim.run("sh", "-c", f"condor-job-proxy pubkey > {keys}")
    theirs = neighbours.directory("linkdir", 0o1777, neighbours.attacker)
    link = theirs / "kl"
    assert victim.run("ln", "-s", str(keys), str(link)).returncode == 0
    assert f"goes through the symbolic link {link}, in {theirs}, which is owned by uid" in \
        _start_fails(neighbours, link)


def test_a_job_without_home_in_a_shared_group_directory_gets_no_swappable_home(
        neighbours: Neighbours) -> None:
    """A group-writable project space lets the group rename the job's directory and plant a
    .bashrc: sessions of a job without a HOME must not take that directory as HOME."""
    victim, attacker = neighbours.victim, neighbours.attacker
    group = "cjp-hn-shared"
    subprocess.run(["groupadd", "-f", group], check=True)
    for user in (victim, attacker):
        subprocess.run(["usermod", "-a", "-G", group, user.name], check=True)
    space = neighbours.directory("space", 0o2775)
    shutil.chown(space, group=group)
    cwd = space / "work"
    cwd.mkdir()
    shutil.chown(cwd, victim.name)
    queue = neighbours.directory("queue", 0o1777)
    env = {"CONDOR_JOB_PROXY_QUEUE": str(queue), "HOME": "/nonexistent",
           "XDG_CONFIG_HOME": f"{victim.home}/.config", "XDG_STATE_HOME": f"{victim.home}/.local/state"}
    err_file = neighbours.directory("err", 0o755) / "starter.err"
    with open(err_file, "wb") as err:
        process = victim.popen("condor-job-starter", "run", "--", "sleep", "300", env=env,
                               cwd=cwd, stderr=err, stdin=subprocess.DEVNULL)
    try:
        host = f"job-{wait_for_job_line(process, err_file, timeout=30)}"
        job_env = {"CONDOR_JOB_PROXY_QUEUE": str(queue)}
        assert victim.run("condor-job-proxy", "config", "refresh", env=job_env).returncode == 0
        result = victim.run("ssh", "-o", "BatchMode=yes", host, 'echo "$HOME"; pwd', env=job_env)
        assert result.returncode == 0, (result.stderr, err_file.read_text())
        home, where = result.stdout.decode().split()
        assert where == str(cwd) and home != str(cwd), result
        assert "sessions of a job without a HOME get" in err_file.read_text()
    finally:
        end_job(process)
        victim.run("condor-job-proxy", "daemon", "--stop", env={"CONDOR_JOB_PROXY_QUEUE": str(queue)})
        subprocess.run(["groupdel", group], check=False)
