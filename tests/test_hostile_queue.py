"""Hostile neighbours in a shared local queue (a 1777 directory, as /tmp): an attacker, a
real unix account of another uid, writes what any local user may write there (files of their
own, of any name and content) and runs starters of their own; the victim's listing, include,
ssh and `ssh condor-interactive` must neither run the attacker's code nor take their job for
the victim's, and must go on working.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from accounts import Account, account, ensure_venv
from conftest import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creating test accounts needs root")

NSS_WRAPPER = Path("/usr/lib/x86_64-linux-gnu/libnss_wrapper.so")
SETTINGS = "control_master = false\n[interactive]\nlinger = 4\n"


class Neighbours:
    """The victim and the attacker on one machine, sharing ``queue``; everything the tests
    start is ended afterwards."""

    def __init__(self) -> None:
        ensure_venv()
        self.victim, self.attacker = account("victim"), account("attacker")
        self.scratch = Path(tempfile.mkdtemp(prefix="cjp-neighbours-"))
        os.chmod(self.scratch, 0o755)
        self.queue = self.scratch / "queue"
        self.queue.mkdir()
        os.chmod(self.queue, 0o1777)
        self.open = self.scratch / "open"   # where either may leave a trace
        self.open.mkdir()
        os.chmod(self.open, 0o1777)
        self.env = {"CONDOR_JOB_PROXY_QUEUE": str(self.queue)}
        self.processes: list[subprocess.Popen] = []
        self.pids: list[int] = []
        for user in (self.victim, self.attacker):
            user.run("sh", "-c", "mkdir -p ~/.config/condor-job-proxy && "
                     f"printf '{SETTINGS}' > ~/.config/condor-job-proxy/config.toml")
            result = user.run("condor-job-proxy", "setup", "--yes", env=self.env)
            assert result.returncode == 0, result.stderr
        self.victim_key = self.victim.run("condor-job-proxy", "pubkey", env=self.env).stdout.decode()

    def uid(self, user: Account) -> int:
        return int(user.run("id", "-u").stdout)

    def plant(self, name: str, data: bytes, mode: str = "644") -> None:
        """What the attacker may do in a sticky queue: write a file of their own."""
        result = self.attacker.run("sh", "-c", f'cat > "$1" && chmod {mode} "$1"', "sh",
                                   str(self.queue / name), input=data)
        assert result.returncode == 0, result.stderr

    def forged(self, cluster: int, pid: int, **fields: object) -> bytes:
        """A record of the attacker's that the queue's types accept."""
        record = {"cluster": cluster, "proc": 0, "owner": self.attacker.name,
                  "owner_uid": self.uid(self.attacker), "state": "running", "starter_pid": pid,
                  "pids": [pid], "starter_address": "127.0.0.1:9", "starter_key": self.key(),
                  "start_time": time.time(), "command": ["sleep", "600"], "cwd": "/",
                  "sessions": 0, **fields}
        return json.dumps(record).encode()

    def key(self) -> str:
        path = self.scratch / "attacker-starter-key"
        if not path.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                           check=True)
        return " ".join(Path(f"{path}.pub").read_text().split()[:2])

    def attacker_process(self) -> int:
        """A live process of the attacker's, for records to name as their starter."""
        out = self.attacker.run("sh", "-c", "sleep 600 </dev/null >/dev/null 2>&1 & echo $!")
        pid = int(out.stdout)
        self.pids.append(pid)
        return pid

    def start_job(self, user: Account, *starter_args: str, env: dict | None = None) -> str:
        """A real job of ``user``'s in the shared queue; its host name."""
        log = self.scratch / f"{user.name}-{len(self.processes)}.err"
        with open(log, "wb") as err:
            os.chmod(log, 0o666)
            process = user.popen("condor-job-starter", "run", *starter_args, "--", "sleep", "600",
                                 env={**self.env, **(env or {})}, cwd=Path("/tmp"), stderr=err,
                                 stdin=subprocess.DEVNULL)
        self.processes.append(process)
        assert wait_until(lambda: "running: ssh" in log.read_text(), timeout=30), log.read_text()
        return log.read_text().split("running: ssh ")[1].split()[0]

    def jobs(self, user: Account, *extra: str) -> subprocess.CompletedProcess:
        return user.run("condor-job-proxy", *extra, "jobs", env=self.env)

    def end(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for pid in self.pids:
            _kill(pid)
        for path in self.queue.glob("*.json"):   # interactive jobs' starters (the victim's own)
            if path.stat().st_uid == self.uid(self.victim) and path.stat().st_size:
                _kill(json.loads(path.read_text())["starter_pid"])
        shutil.rmtree(self.scratch, ignore_errors=True)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


@pytest.fixture
def town():
    neighbours = Neighbours()
    yield neighbours
    neighbours.end()


def _listing(result: subprocess.CompletedProcess, job: str) -> list[str]:
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.decode().splitlines()[1:]]
    return next((line for line in lines if line[0] == job), [])


def test_planted_owner_name_cannot_run_code_as_the_victim(town: Neighbours) -> None:
    marker = town.open / "pwned"
    injected = f'{town.victim.name}\n    Match exec "touch {marker}"'
    town.plant("5.0.json", town.forged(5, town.attacker_process(), owner=injected))
    refresh = town.victim.run("condor-job-proxy", "config", "refresh", env=town.env)
    assert refresh.returncode == 0, refresh.stderr
    for host in ("job-5.0", "job-6.0", "other.example.org"):
        result = town.victim.run("ssh", "-G", host, env=town.env)
        assert not marker.exists(), "the victim's ssh ran the attacker's command"
        assert result.returncode == 0, result.stderr
    # Another uid's job, whose starter does not let the victim in: no Host block at all.
    include = (town.victim.home / ".config/condor-job-proxy/ssh_config").read_text()
    assert "Host job-5.0" not in include and "other job" in include
    assert _listing(town.jobs(town.victim), "5.0")[1] == town.attacker.name


def test_a_uid_without_passwd_entry_cannot_claim_an_accounts_name(town: Neighbours) -> None:
    """A batch slot's uid has no passwd entry: its record may name it, but not as a user here."""
    nameless = 47_312
    sleeper = subprocess.Popen(["setpriv", f"--reuid={nameless}", f"--regid={nameless}",
                                "--clear-groups", "sleep", "600"], stdin=subprocess.DEVNULL)
    town.processes.append(sleeper)
    for cluster, claimed in ((40, town.victim.name), (41, "slot1_7")):
        path = town.queue / f"{cluster}.0.json"
        path.write_bytes(town.forged(cluster, sleeper.pid, owner=claimed, owner_uid=nameless))
        os.chown(path, nameless, nameless)
        os.chmod(path, 0o644)
    listing = town.jobs(town.victim)
    assert _listing(listing, "40.0")[1:3] == ["uid", str(nameless)]
    assert _listing(listing, "41.0")[1] == "slot1_7"   # no account's name: the slot's own word
    town.victim.run("condor-job-proxy", "config", "refresh", env=town.env)
    include = (town.victim.home / ".config/condor-job-proxy/ssh_config").read_text()
    assert "Host job-40.0" not in include and f"User {town.victim.name}" not in include
    assert "Host job-41.0" not in include and "other jobs in the queue left out" in include


def test_a_quote_in_a_planted_record_does_not_break_the_victims_config(town: Neighbours) -> None:
    own = town.start_job(town.victim)
    town.plant("900.0.json", town.forged(900, town.attacker_process(), owner='x"y'))
    town.plant("901.0.json", town.forged(901, town.attacker_process(), label="\x1b]0;owned\x07",
                                         command=["\x1b[2J", "rm -rf ~"]))
    assert town.victim.run("condor-job-proxy", "config", "refresh", env=town.env).returncode == 0
    result = town.victim.run("ssh", "-o", "BatchMode=yes", own, "echo reached", env=town.env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"reached\n"
    listing = town.jobs(town.victim)
    assert b"\x1b" not in listing.stdout and b"\x07" not in listing.stdout
    assert _listing(listing, "900.0")[1] == town.attacker.name


def test_planted_file_names_do_not_stop_the_queue(town: Neighbours) -> None:
    first = town.start_job(town.victim)
    assert first == "job-1.0"
    for name in ("1.0.5.json", "2147483647.0.json", "01.0.json", "3.0.0.json", "0.0.json"):
        town.plant(name, b"")
    town.plant("2147483646.0.json", town.forged(2147483646, town.attacker_process()))
    town.plant("7.0.json", b" " * (2 << 20))   # a giant: not read whole
    town.plant("108.0.json", b"[" * 100_000)   # nested past Python's recursion limit
    made = town.attacker.run("sh", "-c", 'mkfifo "$1/4.0.json" && mkdir "$1/5.0.json" && '
                             'ln -s /etc/passwd "$1/6.0.json"', "sh", str(town.queue))
    assert made.returncode == 0, made.stderr
    listing = town.jobs(town.victim, "--debug")
    assert _listing(listing, "1.0")[1] == town.victim.name
    assert "ignored '1.0.5.json'" in listing.stderr.decode()
    # After the highest valid record (2147483646) the only id left in range has a planted
    # file: the queue goes on from the lowest free id.
    started = [town.start_job(town.victim) for _ in range(3)]
    assert started == ["job-2.0", "job-3.0", "job-8.0"]   # 4-7 hold a FIFO, a directory...
    for host in started:
        result = town.victim.run("ssh", "-o", "BatchMode=yes", host, "echo reached", env=town.env)
        assert result.stdout == b"reached\n", result.stderr
    assert town.victim.run("condor-job-proxy", "config", "refresh", env=town.env).returncode == 0


@pytest.mark.skipif(not NSS_WRAPPER.exists(), reason="needs libnss-wrapper")
def test_an_impostor_starter_is_listed_and_reached_as_who_it_is(town: Neighbours) -> None:
    """The attacker's starter runs under libnss-wrapper with their uid named as the victim,
    and lets the victim's key in."""
    files = town.scratch / "impostor"
    files.mkdir()
    uid, gid = town.uid(town.attacker), int(town.attacker.run("id", "-g").stdout)
    (files / "passwd").write_text(f"{town.victim.name}:x:{uid}:{gid}::{town.attacker.home}:/bin/sh\n")
    (files / "group").write_text(f"{town.victim.name}:x:{gid}:\n")
    (files / "victim.pub").write_text(town.victim_key)
    shutil.chown(files, town.attacker.name)
    host = town.start_job(town.attacker, "--authorized-keys-file", str(files / "victim.pub"),
                          env={"LD_PRELOAD": str(NSS_WRAPPER), "NSS_WRAPPER_PASSWD": str(files / "passwd"),
                               "NSS_WRAPPER_GROUP": str(files / "group")})
    job = host.removeprefix("job-")
    assert _listing(town.jobs(town.victim), job)[1] == town.attacker.name
    town.victim.run("condor-job-proxy", "config", "refresh", env=town.env)
    include = (town.victim.home / ".config/condor-job-proxy/ssh_config").read_text()
    assert f"Host {host}" not in include   # its starter refuses the victim's login name
    result = town.victim.run("ssh", "-o", "BatchMode=yes", host, "id -u", env=town.env)
    assert result.returncode == 255 and result.stdout == b"", result.stdout + result.stderr
    assert f"is {town.attacker.name}'s, not yours".encode() in result.stderr, result.stderr
    result = town.victim.run("ssh", "-o", "BatchMode=yes", f"{town.attacker.name}@{host}",
                             "id -u", env=town.env)
    assert result.returncode == 255 and result.stdout == b"", result.stdout + result.stderr
    assert b"runs as user" in result.stderr, result.stderr   # the impostor's own refusal


def test_a_record_whose_starter_runs_as_another_uid_is_flagged(town: Neighbours) -> None:
    own = town.start_job(town.victim).removeprefix("job-")
    victims = json.loads((town.queue / f"{own}.json").read_text())
    town.plant("77.0.json", town.forged(77, victims["starter_pid"],
                                        starter_address=victims["starter_address"],
                                        starter_key=victims["starter_key"], owner=town.victim.name))
    line = _listing(town.jobs(town.victim), "77.0")
    assert line[1] == town.attacker.name and line[2] == "lost", line
    result = town.victim.run("ssh", "-o", "BatchMode=yes", "job-77.0", "true", env=town.env)
    assert result.returncode == 255
    assert f"runs as uid {town.uid(town.victim)}, not as the record's owner" in result.stderr.decode()
    # An administrator removing the planted job must not end the victim's starter.
    removal = subprocess.run([sys.executable, "-m", "condor_job_proxy.starter", "rm", "--queue", str(town.queue),
                              "77.0"], capture_output=True, timeout=60)
    assert removal.returncode != 0 and b"runs as uid" in removal.stderr, removal.stderr
    assert json.loads((town.queue / f"{own}.json").read_text())["state"] == "running"
    ssh = town.victim.run("ssh", "-o", "BatchMode=yes", f"job-{own}", "echo reached", env=town.env)
    assert ssh.stdout == b"reached\n", ssh.stderr


def test_planted_records_cannot_capture_ssh_condor_interactive(town: Neighbours) -> None:
    """The attacker watches for every new process of the victim's and at once plants a record
    naming it as the starter of a job of theirs, at an address they listen on."""
    caught = town.open / "caught"
    listener = town.attacker.popen("python3", "-c", _LISTENER, str(caught),
                                   stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    town.processes.append(listener)
    port = int(listener.stdout.readline())
    record = json.loads(town.forged(0, 1, starter_address=f"127.0.0.1:{port}",
                                    owner=town.victim.name))
    watcher = town.attacker.popen("python3", "-c", _WATCHER, str(town.queue), json.dumps(record),
                                  str(town.uid(town.victim)), stdin=subprocess.DEVNULL)
    town.processes.append(watcher)
    time.sleep(1)
    result = town.victim.run("ssh", "-o", "BatchMode=yes", "condor-interactive", "id -un",
                             env=town.env, timeout=120)
    planted = [p for p in town.queue.glob("*.json") if p.stat().st_uid == town.uid(town.attacker)]
    assert planted, "the watcher planted nothing"
    assert not caught.exists(), "the victim's proxy connected to the attacker's address"
    job = result.stderr.decode().split("submitted job ")[1].split()[0]
    assert (town.queue / f"{job}.json").stat().st_uid == town.uid(town.victim), "took a planted job"
    starter = json.loads((town.queue / f"{job}.json").read_text())["starter_pid"]
    assert starter in {json.loads(path.read_text())["starter_pid"] for path in planted}, \
        "the watcher missed the victim's starter: the attack was not tried"
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{town.victim.name}\n".encode()


_LISTENER = """
import socket, sys
import time
server = socket.create_server(("127.0.0.1", 0))
server.settimeout(1)
print(server.getsockname()[1], flush=True)
deadline = time.time() + 130
while time.time() < deadline:
    try:
        conn, _ = server.accept()
    except TimeoutError:
        continue
    open(sys.argv[1], "w").write("connected")
    conn.close()
"""

_WATCHER = """
import json, os, sys, time
queue, record, victim = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
seen, cluster, deadline = set(), 100, time.time() + 110
while time.time() < deadline:
    for name in os.listdir("/proc"):
        if not name.isdigit() or name in seen:
            continue
        seen.add(name)
        try:
            if os.stat("/proc/" + name).st_uid != victim:
                continue
        except OSError:
            continue
        cluster += 1
        path = os.path.join(queue, "%d.0.json" % cluster)
        with open(path, "w") as file:
            json.dump(dict(record, cluster=cluster, starter_pid=int(name), pids=[int(name)]), file)
        os.chmod(path, 0o644)
    time.sleep(0.01)
"""


def test_a_queue_directory_another_user_owns_is_not_trusted(town: Neighbours) -> None:
    """Its owner may rename anything in it, sticky or not: swap their record in for the
    victim's. The victim's starter will not use it, and records there of anyone but the
    directory's owner are not believed."""
    theirs = town.open / "theirs"   # /tmp-like: anyone may make a directory there
    assert town.attacker.run("mkdir", "-m", "1777", str(theirs)).returncode == 0
    env = {"CONDOR_JOB_PROXY_QUEUE": str(theirs)}
    refused = town.victim.run("condor-job-starter", "run", "--", "true", env=env, timeout=30)
    assert refused.returncode == 1
    assert refused.stderr.decode().strip() == (
        f"condor-job-starter: queue directory {theirs} is owned by uid {town.uid(town.attacker)}, "
        "not by the job's user or root: another user could swap your job's record; use a "
        "directory of yours, or root's (mkdir -m 1777)")
    # A record of the victim's placed there some other way (an old starter) is not believed.
    record = json.loads(town.forged(5, os.getpid(), owner=town.victim.name,
                                    owner_uid=town.uid(town.victim)))
    (theirs / "5.0.json").write_text(json.dumps(record))
    os.chown(theirs / "5.0.json", town.uid(town.victim), -1)
    result = town.victim.run("condor-job-proxy", "--queue", str(theirs), "connect", "job-5.0",
                             env=env, input=b"")
    assert result.returncode == 255
    assert f"queue directory {theirs} belongs to uid {town.uid(town.attacker)}" in \
        result.stderr.decode(), result.stderr


def test_a_queue_directory_another_user_owns_stops_the_starter_before_the_job_runs(
        town: Neighbours) -> None:
    """As the TMPDIR and the keys file are: one line, and nothing of the job has run (nor a
    keeper's line about processes it had to end)."""
    theirs = town.open / "theirs-mq"
    assert town.attacker.run("mkdir", "-m", "1777", str(theirs)).returncode == 0
    ran = town.open / "victim-ran"
    refused = town.victim.run("condor-job-starter", "run", "--", "sh", "-c",
                              f"touch {ran}; sleep 100", timeout=60,
                              env={"CONDOR_JOB_PROXY_QUEUE": str(theirs)})
    assert refused.returncode == 1
    line = refused.stderr.decode()
    assert line.startswith(f"condor-job-starter: queue directory {theirs} ") and \
        line.count("\n") == 1, line
    assert not ran.exists()


def _include(town: Neighbours) -> str:
    return (town.victim.home / ".config/condor-job-proxy/ssh_config").read_text()


def _lets_the_victim_in(town: Neighbours) -> Path:
    """A keys file of the attacker's holding the victim's public key (public to everyone)."""
    keys = town.scratch / "victim-key.pub"
    keys.write_text(town.victim_key)
    shutil.chown(keys, town.attacker.name)
    return keys


def test_another_users_job_that_lets_the_victim_in_is_not_entered_as_the_victim(
        town: Neighbours) -> None:
    """The attacker lets the victim's (public) key into a job of theirs. Neither the refusal of
    the victim's own login name nor a refresh may write ``User attacker`` into the victim's
    include, so no later ``ssh job-N`` (batch mode, scp, VS Code) lands there silently."""
    host = town.start_job(town.attacker, "--authorized-keys-file", str(_lets_the_victim_in(town)))
    job = host.removeprefix("job-")
    for refresh in (False, False, True):
        if refresh:
            assert town.victim.run("condor-job-proxy", "config", "refresh",
                                   env=town.env).returncode == 0
        result = town.victim.run("ssh", "-o", "BatchMode=yes", host, "id -un", env=town.env)
        assert result.returncode == 255 and result.stdout == b"", result
        ours = [line for line in result.stderr.decode().splitlines()
                if line.startswith("condor-job-proxy:")]
        assert len(ours) == 1, result.stderr
        assert f"job {job} is {town.attacker.name}'s" in ours[0], ours
        assert f"ssh {town.attacker.name}@{host}" in ours[0] and "refresh" not in ours[0], ours
        assert f"Host {host}" not in _include(town)
    names = town.victim.run("condor-job-proxy", "jobs", "--names", env=town.env)
    assert host not in names.stdout.decode().split(), names


def test_typing_the_other_accounts_name_enters_its_job_and_says_whose_it_is(
        town: Neighbours) -> None:
    """The explicit name is the consent; the session still says whose account it is in."""
    host = town.start_job(town.attacker, "--authorized-keys-file", str(_lets_the_victim_in(town)))
    result = town.victim.run("ssh", "-o", "BatchMode=yes", f"{town.attacker.name}@{host}",
                             "id -un", env=town.env)
    assert result.stdout.decode().strip() == town.attacker.name, result.stderr
    assert (f"condor-job-proxy: note: job {host.removeprefix('job-')} belongs to "
            f"{town.attacker.name} (uid {town.uid(town.attacker)}), not to you") in \
        result.stderr.decode()


def test_condor_ssh_to_job_enters_another_accounts_job_only_when_l_names_it(
        town: Neighbours) -> None:
    """condor_ssh_to_job has no user@: its -l is the consent, as ssh's typed name is, so a
    script's `condor_ssh_to_job N` or `rsync -e condor_ssh_to_job` is not drawn into the
    attacker's account."""
    host = town.start_job(town.attacker, "--authorized-keys-file", str(_lets_the_victim_in(town)))
    job = host.removeprefix("job-")
    refused = town.victim.run("condor_ssh_to_job", job, "id -un", env=town.env)
    assert refused.returncode != 0 and town.attacker.name.encode() not in refused.stdout, refused
    assert town.attacker.name in refused.stderr.decode(), refused.stderr
    assert f"-l {town.attacker.name}" in refused.stderr.decode(), refused.stderr
    entered = town.victim.run("condor_ssh_to_job", "-l", town.attacker.name, job, "id -un",
                              env=town.env)
    assert entered.stdout.decode().strip() == town.attacker.name, entered.stderr


_SILENT = """
import socket, sys, time
server = socket.create_server(("127.0.0.1", 0), backlog=64)
print(server.getsockname()[1], flush=True)
held, deadline = [], time.time() + 120
server.settimeout(1)
while time.time() < deadline:
    try:
        held.append(server.accept()[0])   # accepted, never answered
    except TimeoutError:
        continue
"""


def _silent_starter(town: Neighbours) -> int:
    """The port of a listener of the attacker's that accepts and never answers."""
    silent = town.attacker.popen("python3", "-c", _SILENT, stdout=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL)
    town.processes.append(silent)
    return int(silent.stdout.readline())


def test_silent_starters_of_another_user_do_not_stall_the_victims_refresh(town: Neighbours) -> None:
    """Refresh gives Host blocks to the victim's own jobs only, so it asks no other starter;
    twenty that accept and never answer cost it nothing."""
    port, pid = _silent_starter(town), town.attacker_process()
    for cluster in range(300, 320):
        town.plant(f"{cluster}.0.json", town.forged(cluster, pid, starter_address=f"127.0.0.1:{port}"))
    began = time.monotonic()
    done = town.victim.run("condor-job-proxy", "config", "refresh", env=town.env, timeout=120)
    took = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    assert took < 15, f"refresh took {took:.1f} s"   # unbounded, it took 20 x 10 s / 8 = 25+ s
    include = (town.victim.home / ".config/condor-job-proxy/ssh_config").read_text()
    assert "job-300" not in include and "20 other jobs" in include


@pytest.mark.parametrize("how_many", [1, 6])
def test_a_silent_starter_of_another_user_costs_the_victims_refresh_nothing(
        town: Neighbours, how_many: int) -> None:
    """One silent starter was enough to hold refresh 10 s (its probe thread joined at exit)."""
    port, pid = _silent_starter(town), town.attacker_process()
    for cluster in range(330, 330 + how_many):
        town.plant(f"{cluster}.0.json", town.forged(cluster, pid, starter_address=f"127.0.0.1:{port}"))
    began = time.monotonic()
    done = town.victim.run("condor-job-proxy", "config", "refresh", env=town.env, timeout=120)
    took = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    assert took < 5, f"refresh took {took:.1f} s"


def test_doctor_on_a_silent_starter_of_another_user_gives_up_within_two_seconds(
        town: Neighbours) -> None:
    """Doctor still asks another's starter (within 2 s) and says whose job it is and how to
    enter it on purpose."""
    port, pid = _silent_starter(town), town.attacker_process()
    town.plant("340.0.json", town.forged(340, pid, starter_address=f"127.0.0.1:{port}"))
    began = time.monotonic()
    done = town.victim.run("condor-job-proxy", "doctor", "job-340.0", env=town.env, timeout=120)
    took = time.monotonic() - began
    out = done.stdout.decode()
    assert "state: not reachable now" in out, out
    assert (f"owner: {town.attacker.name} (uid {town.uid(town.attacker)}), not you: "
            f"to enter it as {town.attacker.name} on purpose, type that name: "
            f"ssh {town.attacker.name}@job-340.0") in out, out
    assert took < 5, f"doctor took {took:.1f} s"


def test_a_lone_surrogate_in_a_planted_record_does_not_stop_the_listing(town: Neighbours) -> None:
    town.plant("90.0.json", town.forged(90, town.attacker_process(), command=["\ud800bad"]))
    listing = town.jobs(town.victim)
    assert listing.returncode == 0, listing.stderr
    assert _listing(listing, "90.0")[-1] == "?bad"


def test_another_users_job_is_refused_as_not_yours_and_not_offered(town: Neighbours) -> None:
    """``ssh job-N`` as yourself is refused before any connection, saying whose job it is;
    typing that name reaches its starter, which refuses a key it was not given. Completion
    offers only what the include offers: your own jobs."""
    theirs = town.start_job(town.attacker)
    mine = town.start_job(town.victim)
    result = town.victim.run("ssh", "-o", "BatchMode=yes", theirs, "true", env=town.env)
    assert result.returncode == 255
    assert f"is {town.attacker.name}'s, not yours" in result.stderr.decode(), result.stderr
    assert "refresh" not in result.stderr.decode()
    result = town.victim.run("ssh", "-o", "BatchMode=yes", f"{town.attacker.name}@{theirs}",
                             "true", env=town.env)
    assert result.returncode == 255
    assert "you are not the job's owner" in result.stderr.decode(), result.stderr
    names = town.victim.run("condor-job-proxy", "jobs", "--names", env=town.env)
    assert names.stdout.decode().split() == [mine], names


def test_an_id_seen_for_another_users_job_is_never_the_victims_next(town: Neighbours) -> None:
    """The attacker's job 5.0 was listed (so the victim's include and a shared connection may
    still name it); the attacker deletes its record; the victim's next job must not take 5.0."""
    town.plant("5.0.json", town.forged(5, town.attacker_process()))
    assert _listing(town.jobs(town.victim), "5.0")[1] == town.attacker.name
    assert town.attacker.run("rm", str(town.queue / "5.0.json")).returncode == 0
    assert town.start_job(town.victim) == "job-6.0"
