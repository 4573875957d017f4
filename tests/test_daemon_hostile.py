"""The connect daemon holds the user's signing ability for as long as it runs: garbage on its
socket must not hurt it, and it must sign only with the key as it is now.

A request from another uid and one from another environment are refused in
tests/test_connect_daemon.py (test_another_user_is_refused_by_the_daemon,
test_daemon_declines_a_request_from_another_environment).
"""
from __future__ import annotations

import os
import pwd
import random
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import Job, Workbench, wait_until
from handshake import new_key, rss_kb, threads, user_key
from condor_job_proxy.proxycmd.daemon import quick
from test_connect_daemon import ask_daemon, client_only, daemon_pid, first_connect, full_command

KINDS = ("noise", "huge count", "wrong protocol", "too large", "lying count", "hostile host",
         "hostile options", "foreign context", "nothing")


def request(rng: random.Random, kind: str, command: list[str], context: list[bytes]) -> bytes:
    """One malformed or hostile request of ``kind``, in the fast client's format."""
    def words(argv: list[str], ctx: list[bytes] = context) -> bytes:
        return b"\0".join([quick.PROTOCOL, str(len(argv)).encode(), *map(os.fsencode, argv), *ctx])
    host = rng.choice(["job-99999999999", "job-1.0.0.0", "job-../../etc", "job-\udcff",
                       "job-" + "9" * 500, "-oProxyCommand=x", ""])
    return {
        "noise": rng.randbytes(rng.randrange(1, 500)),
        "huge count": b"1\0" + b"9" * rng.randrange(5000, 20000) + b"\0x",
        "wrong protocol": b"2\0" + words(command)[2:],
        "too large": words(command) + b"\0" + b"A" * (300 * 1024),
        "lying count": b"1\0" + str(rng.randrange(10, 10**6)).encode() + b"\0a\0b",
        "hostile host": words(command[:-2] + [host, "x"]),
        "hostile options": words(command[:-2] + ["--identity", "/etc/shadow", "--known-hosts",
                                                 "/etc/passwd", "job-99.0", "x"]),
        "foreign context": words(command, [b"CONDOR_X=" + rng.randbytes(20).hex().encode()]),
        "nothing": b"",
    }[kind]


def connect_command(bench: Workbench, job: Job) -> list[str]:
    """The full command ssh runs for ``job``, as its user (the daemon serves it)."""
    return full_command(bench, job)[:-1] + [pwd.getpwuid(os.getuid()).pw_name]


def send(socket_path: Path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as channel:
        channel.settimeout(20)
        channel.connect(str(socket_path))
        try:
            channel.sendall(data)
            channel.shutdown(socket.SHUT_WR)
        except OSError:
            pass     # it refused a too-large request before reading all of it
        try:
            return channel.recv(100)
        except ConnectionResetError:
            return b""


def test_daemon_survives_a_flood_of_malformed_requests(bench: Workbench, job: Job) -> None:
    socket_path = first_connect(bench, job)
    pid = daemon_pid(socket_path)
    command = connect_command(bench, job)
    context = quick.context({os.fsencode(k): os.fsencode(v) for k, v in bench.env.items()})
    assert ask_daemon(socket_path, command, context)[:1] == quick.SOCKET   # warmed up
    memory, baseline_threads = rss_kb(pid), threads(pid)
    rng = random.Random(16)
    requests = [request(rng, KINDS[i % len(KINDS)], command, context) for i in range(1000)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda data: send(socket_path, data), requests))
    for data, answer in zip(requests, answers):
        assert answer[:1] in (quick.FALLBACK, quick.FAILED), (data[:80], answer)
    assert daemon_pid(socket_path) == pid and os.path.exists(f"/proc/{pid}")
    assert rss_kb(pid) - memory < 16 * 1024
    assert wait_until(lambda: threads(pid) <= baseline_threads)
    result = bench.ssh("-o", f"ProxyCommand={client_only(bench)}", job.host, "echo $MARKER")
    assert result.returncode == 0 and result.stdout == b"only-in-the-job\n", result.stderr


def served_by_daemon(bench: Workbench, job: Job) -> bool:
    return bench.ssh("-o", f"ProxyCommand={client_only(bench)}", job.host, "true").returncode == 0


def replace_key(bench: Workbench) -> Path:
    """The user swaps their job-access key for a new one (a rotation after a scare)."""
    key = user_key(bench.root)
    new = new_key(bench.root / "rotated")
    os.replace(f"{new}.pub", f"{key}.pub")
    os.replace(new, key)
    return key


def test_daemon_signs_with_the_key_as_it_is_now(bench: Workbench, job: Job) -> None:
    """After the key file changes, the daemon signs with the new key, never a copy of the old
    one: the starter (which reads the user's public key per connect) lets in only the new."""
    first_connect(bench, job)
    assert served_by_daemon(bench, job)         # the daemon has signed with the old key
    replace_key(bench)
    result = bench.ssh("-o", f"ProxyCommand={client_only(bench)}", job.host, "echo rotated")
    assert result.returncode == 0 and result.stdout == b"rotated\n", result.stderr


def test_daemon_stops_signing_when_the_key_is_removed(bench: Workbench, job: Job) -> None:
    socket_path = first_connect(bench, job)
    assert served_by_daemon(bench, job)
    key = user_key(bench.root)
    key.unlink()
    context = quick.context({os.fsencode(k): os.fsencode(v) for k, v in bench.env.items()})
    assert ask_daemon(socket_path, connect_command(bench, job), context)[:1] == quick.FALLBACK
    result = bench.ssh("-o", f"ProxyCommand={client_only(bench)}", job.host, "true")
    assert result.returncode == 255
