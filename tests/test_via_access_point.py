"""From a laptop that can only ssh to the access point: ssh, scp, sftp, rsync and VS Code into a job.

Three real accounts: the access point's user (runs the job under our starter), a stranger on
the access point, and a laptop account that reaches the access point only through a real
login sshd on a loopback port, with its own ssh config, key and known_hosts, as a user has.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from accounts import SUFFIX, VENV, Account, account, ensure_venv
from conftest import free_port, wait_for_job_line, wait_until
from jobstart import end_job
from loginsshd import login_sshd
from test_generated_config import _socks5_get, _vscode_script
from test_python_client import CLIENT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="test accounts and sshd need root")

FUZZ = '''import json, struct, sys
case = sys.argv[1]
head = lambda length, version=1: struct.pack(">4sBI", b"CJPV", version, length)
ok = {"ok": True, "host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOkx", "user": "nobody"}
body = lambda d: json.dumps(d).encode()
out = {"silent": b"",
       "ssh-banner": b"SSH-2.0-OpenSSH_9.2p1\\r\\n",
       "truncated-header": b"CJPV\\x01\\x00",
       "truncated-body": head(200) + b'{"ok": true',
       "oversized": head(40000) + b" " * 40000,
       "version-2": head(2, 2) + b"{}",
       "not-json": head(4) + b"\\xff\\xfe\\x00{",
       "config-injection": head(len(body({**ok, "host_key": ok["host_key"] + "\\nHost *"})))
                           + body({**ok, "host_key": ok["host_key"] + "\\nHost *"}),
       "not-a-private-key": head(len(body({**ok, "key": "hello"}))) + body({**ok, "key": "hello"}),
       }[case]
sys.stdout.buffer.write(out)
sys.stdout.flush()
'''

# The access point sends a prelude naming some other host key, then relays the real session.
WRONG_KEY = '''import os, subprocess, sys, tempfile
from condor_job_proxy.proxycmd.via.prelude import Prelude, encode
d = tempfile.mkdtemp()
subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d + "/k"], check=True)
other = " ".join(open(d + "/k.pub").read().split()[:2])
host_and_user = sys.argv[sys.argv.index("--session-key") + 2:]
os.write(1, encode(Prelude(other, os.environ["USER"])))
os.execv(sys.argv[1], [sys.argv[1], "connect", "--relay", *host_and_user])
'''


def _write_as(who: Account, path: Path, text: str, mode: str = "600") -> None:
    result = who.run("sh", "-c", f"umask 077; cat > '{path}'; chmod {mode} '{path}'",
                     input=text.encode())
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def via():
    """A job of cjp-ap, and cjp-laptop set up with ``setup --via ap``."""
    ensure_venv()
    ap, stranger, laptop = account("ap"), account("apstranger"), account("laptop")
    root = Path(tempfile.mkdtemp(prefix="cjp-via-"))
    os.chmod(root, 0o755)
    queue = root / "queue"
    queue.mkdir(mode=0o1777)
    queue.chmod(0o1777)
    env = {"CONDOR_JOB_PROXY_QUEUE": str(queue)}
    for user in (ap, stranger):
        assert user.run("condor-job-proxy", "setup", "--yes", env=env).returncode == 0
        # useradd leaves the password locked ("!"), and sshd without PAM turns locked accounts
        # away even for key logins; "*" is no password, as for a real key-only login account.
        subprocess.run(["usermod", "-p", "*", user.name], check=True)
    (root / "fuzz.py").write_text(FUZZ)
    (root / "wrong_key.py").write_text(WRONG_KEY)
    cwd = root / "job"
    cwd.mkdir()
    shutil.chown(cwd, ap.name)
    err_file = root / "starter.err"
    with open(err_file, "wb") as err:
        starter = ap.popen("condor-job-starter", "run", "--", "sleep", "900",
                           env={**env, "MARKER": "in-the-job", "TMPDIR": str(cwd)}, cwd=cwd,
                           stderr=err, stdin=subprocess.DEVNULL)
    try:
        host = f"job-{wait_for_job_line(starter, err_file, timeout=30)}"
        assert laptop.run("mkdir", "-m", "700", "-p", str(laptop.home / ".ssh")).returncode == 0
        assert laptop.run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                          str(laptop.home / ".ssh" / "id_ed25519")).returncode == 0
        laptop_key = (laptop.home / ".ssh" / "id_ed25519.pub").read_text()
        session_env = {"PATH": f"{VENV}/bin:/usr/bin:/bin", **env}
        with login_sshd(root / "sshd", {ap.name: laptop_key, stranger.name: laptop_key},
                        session_env) as sshd:
            _write_as(laptop, laptop.home / ".ssh" / "config",
                      sshd.host_block("ap", ap.name) + sshd.host_block("stranger-ap", stranger.name))
            _write_as(laptop, laptop.home / ".ssh" / "known_hosts", sshd.known_hosts_line())
            # Each ssh here is a connect of its own (as in conftest's bench): what the laptop
            # pins and leaves behind is seen per connection, with no shared master around.
            assert laptop.run("mkdir", "-p", str(laptop.home / ".config" / "condor-job-proxy")
                              ).returncode == 0
            _write_as(laptop, laptop.home / ".config" / "condor-job-proxy" / "config.toml",
                      "control_master = false\n")
            result = laptop.run("condor-job-proxy", "setup", "--yes", "--via", "ap")
            assert result.returncode == 0, result.stderr
            yield {"ap": ap, "laptop": laptop, "host": host, "cwd": cwd, "root": root,
                   "sshd": sshd, "stranger": stranger, "env": env}
    finally:
        end_job(starter)
        shutil.rmtree(root, ignore_errors=True)


def _ssh(via: dict, *args: str, tool: str = "ssh", input: bytes = b"") -> subprocess.CompletedProcess:
    return via["laptop"].run(tool, "-o", "BatchMode=yes", *args, input=input, timeout=90)


def _laptop_state(via: dict) -> Path:
    return via["laptop"].home / ".local" / "state" / "condor-job-proxy"


def _state_files(via: dict) -> dict[str, bytes]:
    """Every file the laptop's proxy keeps (pins, links, keys), with its content."""
    return {str(path): path.read_bytes() if path.is_file() else b"" for path in
            sorted(_laptop_state(via).rglob("*")) if not path.is_socket()}


def test_laptop_runs_a_command_in_the_job_through_the_access_point(via) -> None:
    result = _ssh(via, via["host"], "whoami; pwd; echo $MARKER")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == [via["ap"].name, str(via["cwd"]), "in-the-job"]


def test_setup_via_lists_the_access_points_jobs_in_the_laptops_config(via) -> None:
    include = (via["laptop"].home / ".config" / "condor-job-proxy" / "ssh_config").read_text()
    assert f"Host {via['host']}" in include and f"User {via['ap'].name}" in include
    assert "connect --via ap " in include
    result = via["laptop"].run("condor-job-proxy", "config", "refresh")
    assert result.returncode == 0, result.stderr
    assert (via["laptop"].home / ".config" / "condor-job-proxy" / "ssh_config").read_text() == include


def test_scp_both_ways_through_the_access_point(via) -> None:
    laptop: Account = via["laptop"]
    _write_as(laptop, laptop.home / "up.txt", "from the laptop\n", "644")
    assert _ssh(via, str(laptop.home / "up.txt"), f"{via['host']}:up.txt", tool="scp").returncode == 0
    assert (via["cwd"] / "up.txt").read_text() == "from the laptop\n"
    down = _ssh(via, f"{via['host']}:up.txt", str(laptop.home / "down.txt"), tool="scp")
    assert down.returncode == 0, down.stderr
    assert (laptop.home / "down.txt").read_text() == "from the laptop\n"


def test_sftp_batch_through_the_access_point(via) -> None:
    result = _ssh(via, "-b", "-", via["host"], tool="sftp", input=b"mkdir sftp-made\nls\n")
    assert result.returncode == 0, result.stderr
    assert (via["cwd"] / "sftp-made").is_dir()


def test_rsync_a_directory_to_the_job_and_back(via) -> None:
    laptop: Account = via["laptop"]
    assert laptop.run("sh", "-c", "mkdir -p tree/sub && echo a > tree/sub/a && echo b > tree/b",
                      cwd=laptop.home).returncode == 0
    ssh = "ssh -o BatchMode=yes"
    up = laptop.run("rsync", "-a", "-e", ssh, "tree/", f"{via['host']}:tree/", cwd=laptop.home)
    assert up.returncode == 0, up.stderr
    assert (via["cwd"] / "tree" / "sub" / "a").read_text() == "a\n"
    back = laptop.run("rsync", "-a", "-e", ssh, f"{via['host']}:tree/", "back/", cwd=laptop.home)
    assert back.returncode == 0, back.stderr
    assert (laptop.home / "back" / "b").read_text() == "b\n"


def test_vscode_style_session_reaches_its_server_through_the_socks_port(via) -> None:
    local, remote = free_port(), free_port()
    vscode = via["laptop"].popen("ssh", "-o", "BatchMode=yes", "-T", "-D", str(local), "-o",
                                 "ConnectTimeout=15", via["host"], "bash",
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        vscode.stdin.write(_vscode_script(remote))
        vscode.stdin.flush()
        assert vscode.stdout.readline() == f"listeningOn=={remote}==\n".encode()
        replies: list[bytes] = []

        def fetched() -> bool:
            try:
                replies.append(_socks5_get(local, "127.0.0.1", remote))
                return True
            except (OSError, AssertionError):
                return False
        assert wait_until(fetched, timeout=15, interval=0.2)
        assert replies[-1].endswith(b"vscode-server in the job")
    finally:
        vscode.kill()
        vscode.wait()
        pid_file = via["cwd"] / "vscode_server.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), 15)


def test_a_neighbours_job_that_lets_the_access_point_user_in_gets_no_block_on_the_laptop(
        via) -> None:
    """A neighbour on the access point lets the user's (public) job-access key into a job of
    theirs: the laptop's include must not name it with ``User neighbour``, or a plain
    ``ssh job-N`` from the laptop would land in the neighbour's account silently."""
    ap, stranger, root = via["ap"], via["stranger"], via["root"]
    keys = root / "ap-key.pub"
    keys.write_bytes(ap.run("condor-job-proxy", "pubkey", env=via["env"]).stdout)
    shutil.chown(keys, stranger.name)
    err_file = root / "neighbour.err"
    with open(err_file, "wb") as err:
        theirs = stranger.popen("condor-job-starter", "run", "--authorized-keys-file", str(keys),
                                "--", "sleep", "900", env={**via["env"], "TMPDIR": "/tmp"},
                                cwd=Path("/tmp"), stderr=err, stdin=subprocess.DEVNULL)
    try:
        host = f"job-{wait_for_job_line(theirs, err_file, timeout=30)}"
        result = via["laptop"].run("condor-job-proxy", "config", "refresh")
        assert result.returncode == 0, result.stderr
        include = (via["laptop"].home / ".config" / "condor-job-proxy" / "ssh_config").read_text()
        assert f"Host {host}" not in include and f"Host {via['host']}" in include, include
    finally:
        end_job(theirs)


def test_stranger_on_the_access_point_gets_one_line_and_255(via) -> None:
    before = _state_files(via)
    result = via["laptop"].run("condor-job-proxy", "connect", "--via", "stranger-ap", via["host"],
                               via["ap"].name, input=b"")
    assert result.returncode == 255
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("condor-job-proxy: job "), lines
    assert "not the job's owner" in lines[0]
    assert _state_files(via) == before


def test_job_not_on_the_access_point_is_the_same_line_as_there(via) -> None:
    here = via["laptop"].run("condor-job-proxy", "connect", "--via", "ap", "job-9999.0", input=b"")
    there = via["ap"].run("condor-job-proxy", "connect", "job-9999.0", input=b"",
                          env={"CONDOR_JOB_PROXY_QUEUE": str(via["root"] / "queue")})
    assert here.returncode == there.returncode == 255
    assert here.stderr == there.stderr and len(here.stderr.splitlines()) == 1


def test_script_on_the_laptop_with_shared_connections_sees_the_access_points_refusal(via) -> None:
    """ControlPersist hides the proxy's stderr; a script (no terminal) still gets the line."""
    result = via["laptop"].run("setsid", "-w", "ssh", "-o", "BatchMode=yes", "-o",
                               "ControlMaster=auto", "-o", "ControlPersist=60", "-o",
                               "ControlPath=/tmp/cjp-laptop-refusal-%C", "job-9999.0", "true",
                               input=b"", timeout=90)
    assert result.returncode == 255
    assert "condor-job-proxy: job 9999.0 is not in the queue" in result.stderr.decode(), result


def test_a_host_key_other_than_the_prelude_pinned_is_rejected_on_the_laptop(via) -> None:
    assert _ssh(via, "-o", "ControlPath=none", via["host"], "true").returncode == 0   # pins the real key
    command = f"{VENV}/bin/python {via['root']}/wrong_key.py {VENV}/bin/condor-job-proxy"
    proxy = (f"{VENV}/bin/condor-job-proxy connect --via ap --via-command '{command}' %n %r")
    result = _ssh(via, "-o", "ControlMaster=no", "-o", "ControlPath=none", "-o",
                  f"ProxyCommand={proxy}", via["host"], "echo reached")
    assert result.returncode == 255
    assert b"reached" not in result.stdout
    assert b"REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr
    assert b"Host key verification failed" in result.stderr


FUZZ_ERRORS = {
    "silent": "ap closed the connection before the session was set up",
    "ssh-banner": "ap did not answer with a session prelude",
    "truncated-header": "ap sent a truncated session prelude",
    "truncated-body": "ap sent a truncated session prelude",
    "oversized": "ap sent an oversized session prelude (40000 bytes)",
    "version-2": "ap speaks prelude version 2",
    "not-json": "ap sent a malformed session prelude",
    "config-injection": "ap sent a session prelude with a bad or missing field",
    "not-a-private-key": "ap sent a session prelude with a bad or missing field",
}


@pytest.mark.parametrize("case", FUZZ_ERRORS)
def test_bad_prelude_is_one_clear_line_and_nothing_written(via, case: str) -> None:
    before = _state_files(via)
    result = via["laptop"].run("condor-job-proxy", "connect", "--via", "ap", "--via-command",
                               f"{VENV}/bin/python {via['root']}/fuzz.py {case}", "job-4242.0",
                               input=b"")
    assert result.returncode == 255
    lines = result.stderr.decode().splitlines()
    assert lines == [f"condor-job-proxy: {FUZZ_ERRORS[case]}"] or \
        (len(lines) == 1 and lines[0].startswith(f"condor-job-proxy: {FUZZ_ERRORS[case]}")), lines
    assert _state_files(via) == before
    assert not any("4242" in name for name in before)


def test_access_point_without_condor_job_proxy_says_so_after_the_shells_line(via) -> None:
    result = via["laptop"].run("condor-job-proxy", "connect", "--via", "ap", "--via-command",
                               "no-such-condor-job-proxy", via["host"], input=b"")
    assert result.returncode == 255
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("condor-job-proxy: ap closed the connection before the session was "
                               "set up (ssh exited with status 127: ")
    assert lines[0].endswith("no-such-condor-job-proxy: command not found)"), lines


def test_laptops_ssh_dir_holds_nothing_of_ours_and_the_job_key_is_pinned(via) -> None:
    laptop: Account = via["laptop"]
    assert _ssh(via, via["host"], "true").returncode == 0
    ssh_dir = laptop.home / ".ssh"
    assert sorted(os.listdir(ssh_dir)) == ["config", "id_ed25519", "id_ed25519.pub", "known_hosts"]
    assert (ssh_dir / "known_hosts").read_text() == via["sshd"].known_hosts_line()
    pinned = (_laptop_state(via) / "known_hosts" / via["host"]).read_text()
    on_ap = (via["ap"].home / ".local" / "state" / "condor-job-proxy" / "known_hosts" /
             via["host"]).read_text()
    keys = [line for line in pinned.splitlines() if not line.startswith("#")]
    assert keys and keys == [line for line in on_ap.splitlines() if not line.startswith("#")]
    assert not (_laptop_state(via) / "jobs" / via["host"] / "ssh_key").exists()
    identity = _laptop_state(via) / "identities" / via["host"]
    assert os.readlink(identity) == str(laptop.home / ".config" / "condor-job-proxy" / "id_ed25519")


def test_nothing_of_the_hop_outlives_the_session(via) -> None:
    laptop: Account = via["laptop"]
    hops = lambda: subprocess.run(["pgrep", "-u", laptop.name, "-f", "connect --relay --prelude"],  # noqa: E731
                                  capture_output=True, text=True).stdout.split()
    assert wait_until(lambda: not hops(), timeout=15)   # earlier tests' sessions have ended
    assert _ssh(via, "-o", "ControlPath=none", via["host"], "true").returncode == 0
    assert wait_until(lambda: not hops(), timeout=10), hops()
    on_ap = ["pgrep", "-u", via["ap"].name, "-f", "condor-job-proxy connect --relay --prelude"]
    assert wait_until(lambda: subprocess.run(on_ap, capture_output=True).returncode == 1)


def _proxies(laptop: Account) -> list[str]:
    out = subprocess.run(["pgrep", "-u", laptop.name, "-f", "condor_job_proxy.*connect --via"],
                         capture_output=True, text=True).stdout
    return out.split()


@pytest.mark.parametrize("windows", [False, True], ids=["posix-include", "windows-include"])
def test_proxy_passes_the_hop_to_ssh_or_relays_it_under_windows_semantics(via, windows: bool) -> None:
    """POSIX: the proxy hands ssh its end of the hop and exits. Windows' include (rendered as
    setup renders it there) has no ProxyUseFdpass or ControlMaster, and the proxy relays."""
    laptop: Account = via["laptop"]
    config = ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
    if windows:
        include = _windows_include(laptop)
        options = [line.split()[0] for line in include.splitlines()
                   if line.strip() and not line.lstrip().startswith("#")]
        assert "ProxyCommand" in options
        assert not {"ProxyUseFdpass", "ControlMaster", "ControlPath", "ControlPersist"} & set(options)
        path = laptop.home / "windows_ssh_config"
        _write_as(laptop, path, via["sshd"].host_block("ap", via["ap"].name) + include)
        config = ["-F", str(path), "-o", f"User={via['ap'].name}"]
    session = laptop.popen("ssh", "-o", "BatchMode=yes", *config, via["host"],
                           "echo started; sleep 3; echo done", stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert session.stdout.readline() == b"started\n", session.stderr.read()
        time.sleep(0.5)
        assert bool(_proxies(laptop)) == windows
        assert session.stdout.readline() == b"done\n"
        assert session.wait(30) == 0
    finally:
        session.kill()
        session.wait()


def _windows_include(laptop: Account) -> str:
    """The laptop's include as setup renders it where os.name == 'nt'."""
    code = ("from condor_job_proxy.sshconfig import install, via\n"
            "print(install.include_change(None, via=via.remembered(), jobs=[], windows=True).new,"
            " end='')\n")
    result = laptop.run(f"{VENV}/bin/python", "-c", code)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def test_paramiko_client_on_the_laptop_runs_a_command_through_the_access_point(via) -> None:
    result = via["laptop"].run(f"{VENV}/bin/python", "-c", CLIENT, via["host"], "ap", "")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == ["in-the-job", str(via["cwd"])]


def test_paramiko_client_refuses_a_host_key_other_than_the_prelude_pinned(via) -> None:
    command = f"{VENV}/bin/python {via['root']}/wrong_key.py {VENV}/bin/condor-job-proxy"
    result = via["laptop"].run(f"{VENV}/bin/python", "-c", CLIENT, via["host"], "ap", command)
    assert result.returncode == 1
    assert result.stderr.decode().strip() == "refused: BadHostKeyException"


def test_uninstall_on_the_laptop_forgets_the_access_point_and_setup_brings_it_back(via) -> None:
    laptop: Account = via["laptop"]
    remembered = laptop.home / ".config" / "condor-job-proxy" / "via.json"
    assert remembered.exists()
    assert laptop.run("condor-job-proxy", "config", "uninstall").returncode == 0
    assert not remembered.exists()
    assert (laptop.home / ".ssh" / "config").read_text() == \
        via["sshd"].host_block("ap", via["ap"].name) + \
        via["sshd"].host_block("stranger-ap", f"cjp-apstranger{SUFFIX}")
    assert laptop.run("condor-job-proxy", "setup", "--yes", "--via", "ap").returncode == 0
    assert _ssh(via, via["host"], "true").returncode == 0
