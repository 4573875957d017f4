"""Secrets stay secret: no private key in any process's argv or environment, in a log or an
error message; session and key files are private; only the starter listens, and only where
it was told to."""
from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import Job, Workbench, free_port, wait_until
from handshake import descendants, listening_ports, running_command, user_key

PRIVATE_KEY_HEADER = b"PRIVATE KEY-----"
# Key files, and the session's copy of the job's environment (which may hold a job's tokens).
PRIVATE_FILES = {"starter_key", "host_key", "job_env.sh", "authorized_keys", "sshd_config"}


def private_fragments(key_file: Path) -> list[bytes]:
    """Pieces of an OpenSSH private key that only a copy of its private part would hold: the
    armour, the last lines of its base64 (the private section's end), the raw seed."""
    text = key_file.read_bytes()
    lines = [line for line in text.splitlines() if line and not line.startswith(b"-----")]
    from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption,
                                                              PrivateFormat,
                                                              load_ssh_private_key)
    seed = load_ssh_private_key(text, None).private_bytes(Encoding.Raw, PrivateFormat.Raw,
                                                          NoEncryption())
    return [PRIVATE_KEY_HEADER, *lines[-3:-1], seed, seed.hex().encode(), base64.b64encode(seed)]


def key_files(bench: Workbench) -> list[Path]:
    """Every private key of this machine's setup: the user's, each starter's two."""
    tmp = bench.root / "tmp"
    return [user_key(bench.root),
            *tmp.glob("cjp-starter-*/starter_key"), *tmp.glob("cjp-starter-*/host_key")]


def leaks(text: bytes, fragments: list[bytes]) -> list[bytes]:
    return [fragment[:20] for fragment in fragments if fragment in text]


def process_texts(pids: set[int]) -> dict[str, bytes]:
    texts = {}
    for pid in pids:
        for name in ("cmdline", "environ"):
            try:
                texts[f"{pid} {name}"] = Path(f"/proc/{pid}/{name}").read_bytes()
            except OSError:
                pass
    return texts


def all_pids() -> set[int]:
    return {int(name) for name in os.listdir("/proc") if name.isdigit()}


def daemon_pids(bench: Workbench) -> set[int]:
    return {int(lock.read_text()) for lock in (bench.root / "run").glob("cjp-d-*.sock.lock")
            if lock.read_text().strip().isdigit()}




def test_private_keys_are_in_no_argv_environment_log_or_error(bench: Workbench, job: Job) -> None:
    assert bench.ssh(job.host, "true").returncode == 0       # starts the connect daemon
    assert wait_until(lambda: daemon_pids(bench), timeout=20)
    session = subprocess.Popen(["ssh", "-F", str(bench.ssh_config), "-o", "BatchMode=yes",
                                job.host, "sleep 30"], env=bench.env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: running_command(job.process.pid, b"sleep\x0030\x00"), timeout=20)
        fragments = [f for key in key_files(bench) for f in private_fragments(key)]
        ours = descendants(job.process.pid) | daemon_pids(bench) | {session.pid} | \
            descendants(session.pid)
        for where, text in process_texts(all_pids()).items():
            found = [f for f in leaks(text, fragments) if f != PRIVATE_KEY_HEADER[:20]]
            assert not found, f"process {where} holds private key material {found}"
        for where, text in process_texts(ours).items():
            assert PRIVATE_KEY_HEADER not in text, f"process {where} holds a private key"
    finally:
        session.kill()
        session.communicate()
    logs = error_outputs(bench, job)
    logs["starter stderr"] = job.stderr.encode()
    logs.update({path: path.read_bytes() for path in (bench.root / "state").rglob("*")
                 if path.is_file() and not path.is_symlink()})
    for where, text in logs.items():
        assert not leaks(text, fragments), f"{where} holds private key material"


def error_outputs(bench: Workbench, job: Job) -> dict[str, bytes]:
    """What the proxy says when things go wrong around keys: a key ssh-keygen cannot load, a
    key the job does not know, --debug tracebacks."""
    key = user_key(bench.root)
    broken = bench.root / "broken_key"
    broken.write_bytes(key.read_bytes()[:200] + key.read_bytes()[-100:])
    broken.chmod(0o600)
    Path(f"{broken}.pub").write_bytes(Path(f"{key}.pub").read_bytes())
    lonely = bench.root / "lonely_key"
    lonely.write_bytes(key.read_bytes())
    lonely.chmod(0o600)
    runs = {
        "broken key": ("connect", "--identity", str(broken), job.host),
        "no public half": ("connect", "--identity", str(lonely), job.host),
        "debug, unknown job": ("--debug", "connect", "job-99.0"),
        "debug, broken key": ("--debug", "connect", "--identity", str(broken), job.host),
    }
    outputs = {}
    for name, argv in runs.items():
        result = bench.proxy(*argv, input=b"")
        assert result.returncode != 0, name
        outputs[name] = result.stdout + result.stderr
    return outputs


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_session_and_key_files_are_private(bench: Workbench, job: Job) -> None:
    session = subprocess.Popen(["ssh", "-F", str(bench.ssh_config), "-o", "BatchMode=yes",
                                job.host, "sleep 30"], env=bench.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        tmp = bench.root / "tmp"
        assert wait_until(lambda: running_command(job.process.pid, b"sleep\x0030\x00"), timeout=20)
        directories = [*tmp.glob("cjp-starter-*/cjp-session-*"), *tmp.glob("cjp-starter-*")]
        assert len(directories) == 2
        checked = set()
        for directory in directories:
            assert mode(directory) == 0o700, directory
            for path in directory.iterdir():
                if path.name in PRIVATE_FILES:
                    assert mode(path) == 0o600, (path, oct(mode(path)))
                    checked.add(path.name)
        assert checked == PRIVATE_FILES
    finally:
        session.kill()
        session.wait()
    key = user_key(bench.root)
    assert mode(key) == 0o600
    assert mode(bench.root / "queue" / f"{job.id}.json") & 0o022 == 0
    for socket_path in (bench.root / "run").glob("cjp-d-*.sock"):
        assert mode(socket_path.parent) == 0o700


def test_only_the_starter_listens_and_only_where_configured(bench: Workbench) -> None:
    port = free_port()
    job = bench.start_job("sleep", "600", starter_args=("--listen", "127.0.0.1",
                                                        "--port", str(port)))
    session = subprocess.Popen(["ssh", "-F", str(bench.ssh_config), "-o", "BatchMode=yes",
                                "-L", f"{free_port()}:127.0.0.1:9", job.host, "sleep 30"],
                               env=bench.env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: running_command(job.process.pid, b"sleep\x0030\x00"), timeout=20)
        assert listening_ports({job.process.pid}) == {("127.0.0.1", port)}
        others = descendants(job.process.pid) | daemon_pids(bench)
        assert listening_ports(others) == set(), "a session process or the daemon listens"
    finally:
        session.kill()
        session.wait()


@pytest.mark.parametrize("where", ["127.0.0.2"])
def test_starter_binds_the_address_it_is_given(bench: Workbench, where: str) -> None:
    job = bench.start_job("sleep", "600", starter_args=("--listen", where))
    (found,) = listening_ports({job.process.pid})
    assert found[0] == where
    result = bench.ssh(job.host, "echo reached")
    assert result.returncode == 0 and result.stdout == b"reached\n", result.stderr
