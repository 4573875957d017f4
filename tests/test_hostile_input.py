"""Garbage and abuse on the starter's port, and in job host names: each ends in a typed
error or a timeout, with bounded memory, while other clients keep being served.

The decoder and the job-id parser get property-based tests (hypothesis); the starter gets
hostile hellos, a thousand malformed connections and a client that sends a byte a second.
``python tests/fuzz.py`` runs the same properties as open-ended fuzz targets.
"""
from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Job, Workbench, session_leftovers, sshd_children, wait_until
from handshake import (FakeStarter, address, frame, handshake, job_record, new_key, plant_record,
                       public_line, rss_kb, threads, user_key)
from condor_job_proxy.common.jobid import BadJobId, JobId, parse_host, parse_job_id
from condor_job_proxy.common.keys import normalize
from condor_job_proxy.common.protocol import MAX_MESSAGE, Channel, ProtocolError, Refusal

QUICK = settings(max_examples=200, deadline=None)
AGAINST_A_STARTER = settings(max_examples=60, deadline=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=20)


def framed(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def hostile_frames() -> st.SearchStrategy[bytes]:
    """What arrives on the port: noise, frames of noise, cut frames, lying lengths, bad UTF-8,
    JSON of every shape, deep and huge JSON."""
    hello_with = lambda raw: framed(b'{"type":"hello","x":' + raw + b"}")  # noqa: E731
    return st.one_of(
        st.binary(max_size=64),
        st.binary(max_size=2000).map(framed),
        st.tuples(st.binary(min_size=1, max_size=200).map(framed), st.integers(0, 200))
          .map(lambda pair: pair[0][:pair[1]]),
        st.tuples(st.integers(MAX_MESSAGE + 1, 2**32 - 1), st.binary(max_size=64))
          .map(lambda pair: struct.pack(">I", pair[0]) + pair[1]),
        st.binary(min_size=1, max_size=40).map(lambda raw: hello_with(b'"' + raw + b'"')),
        json_values.map(lambda value: framed(json.dumps(value).encode())),
        json_values.map(lambda value: framed(json.dumps({"type": "hello", "v": value}).encode())),
        st.integers(1, 8000).map(lambda depth: hello_with(b"[" * depth + b"]" * depth)),
        st.integers(1, 5000).map(lambda depth: hello_with(b'{"a":' * depth + b"1" + b"}" * depth)),
        st.integers(MAX_MESSAGE - 40, MAX_MESSAGE).map(lambda size: hello_with(b"1" * size)),
    )


def decode(data: bytes, trailing: bytes = b"") -> tuple[object, bytes]:
    """Feed ``data`` (then ``trailing``) to a reader; its verdict and what it left unread."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(data + trailing)
        theirs.shutdown(socket.SHUT_WR)
        try:
            verdict: object = Channel(ours, seconds=5).receive("hello")
        except ProtocolError as err:
            verdict = err
        ours.settimeout(1)
        left = bytearray()
        while chunk := ours.recv(65536):
            left += chunk
        return verdict, bytes(left)


@QUICK
@given(hostile_frames())
def test_handshake_decoder_answers_garbage_with_a_protocol_error(data: bytes) -> None:
    verdict, _ = decode(data)
    if isinstance(verdict, dict):
        assert verdict["type"] in ("hello", "refused")
    else:
        assert isinstance(verdict, ProtocolError), verdict


@QUICK
@given(json_values, st.binary(max_size=300))
def test_handshake_decoder_never_takes_a_byte_past_its_frame(value, ssh_bytes: bytes) -> None:
    """What follows the handshake is the SSH stream: the decoder must leave all of it."""
    body = json.dumps({"type": "hello", "value": value}).encode()
    verdict, left = decode(framed(body), ssh_bytes)
    assert isinstance(verdict, dict) and left == ssh_bytes


@QUICK
@given(st.text(max_size=80) | st.from_regex(r"job-[0-9.]{0,25}", fullmatch=True))
def test_job_host_parser_gives_a_job_or_one_short_line(host: str) -> None:
    try:
        job = parse_host(host)
    except BadJobId as err:
        message = str(err)   # printable: no escape sequence from a host name reaches a terminal
        assert message.isprintable() and len(message) < 800, message
        return
    assert isinstance(job, JobId) and parse_host(job.host()) == job
    assert all(0 <= part < 2**31 for part in job if part is not None)


@QUICK
@given(st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1),
       st.none() | st.integers(0, 2**31 - 1))
def test_every_job_id_survives_a_round_trip(cluster: int, proc: int, node: int | None) -> None:
    job = JobId(cluster, proc, node)
    assert parse_job_id(str(job)) == job and parse_host(job.host()) == job


@QUICK
@given(st.sampled_from(["", "ssh-ed25519 ", "ssh-rsa ", "no-pty ssh-ed25519 "]),
       st.text(max_size=80))
def test_public_key_parser_gives_a_key_or_none(prefix: str, text: str) -> None:
    """A hello's key goes through ``normalize`` before anything else looks at it."""
    key = normalize(prefix + text)
    assert key is None or (key.split()[0] in prefix and key.isascii())


# --- against a real starter ---------------------------------------------------------------------



def ask(where: tuple[str, int], data: bytes, timeout: float = 12) -> list[dict]:
    """Send ``data``, close our side, and read the starter's frames until it hangs up."""
    replies = []
    with socket.create_connection(where, timeout=timeout) as conn:
        try:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass    # the starter may hang up before taking all of it (an oversized frame)
        received = bytearray()
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    while len(received) >= 4:
        (length,) = struct.unpack(">I", received[:4])
        replies.append(json.loads(received[4:4 + length]))
        received = received[4 + length:]
    return replies


def assert_starter_unharmed(bench: Workbench, job: Job) -> None:
    assert job.process.poll() is None
    assert "Traceback" not in job.stderr
    bench.proxy("daemon", "--stop", check=True)   # and any spare session it kept
    assert wait_until(lambda: not session_leftovers(bench) and not sshd_children(job.process.pid))


KNOWN_CODES = {value for name, value in vars(Refusal).items() if name.isupper()}


@AGAINST_A_STARTER
@given(st.data())
def test_starter_answers_hostile_hellos_with_typed_refusals(bench: Workbench, job: Job,
                                                            data: st.DataObject) -> None:
    record = job_record(bench.root / "queue", job.id)
    valid = {"proto": 1, "job": job.id, "user": record["owner"],
             "key": public_line(user_key(bench.root)), "nonce": "ab" * 32}
    hello = {"type": "hello"}
    for name, good in valid.items():   # mostly good fields, so the later checks are reached
        if data.draw(st.integers(0, 3), label=f"{name} is good") > 0:
            hello[name] = good
        elif data.draw(st.booleans(), label=f"send {name}"):
            hello[name] = data.draw(json_values | st.text(max_size=300) | st.text(max_size=60)
                                    .map(lambda text: "ssh-ed25519 " + text), label=name)
    for name in ("shells", "session_key", "type"):
        if data.draw(st.booleans(), label=f"add {name}"):
            hello[name] = data.draw(json_values, label=name)
    auth = data.draw(st.binary(max_size=200).map(framed) | json_values.map(
        lambda v: frame({"type": "auth", "sig": v})), label="auth")
    replies = ask(address(record), frame(hello) + auth)
    assert replies, "the starter hung up without a word"
    final = replies[-1]
    assert final["type"] == "refused" and final["code"] in KNOWN_CODES - {Refusal.INTERNAL}, replies
    assert "Traceback" not in job.stderr


MALFORMED_KINDS = ("noise", "cut frame", "lying length", "bad utf-8", "deep json", "wrong types",
                   "huge string", "not an object", "empty")


def malformed(rng: random.Random, kind: str) -> bytes:
    """One malformed request of ``kind``, quickly made (no hypothesis: a thousand of them)."""
    noise = rng.randbytes(rng.randrange(1, 300))
    return {
        "noise": noise,
        "cut frame": framed(b'{"type":"hello","proto":1,"job":"1.0"}')[:rng.randrange(1, 40)],
        "lying length": struct.pack(">I", rng.randrange(MAX_MESSAGE + 1, 2**32)) + noise,
        "bad utf-8": framed(b'{"type":"hello","job":"\xff\xfe' + noise[:20] + b'"}'),
        "deep json": framed(b'{"type":"hello","x":' + b"[" * 8000 + b"]" * 8000 + b"}"),
        "wrong types": frame({"type": "hello", "proto": [1], "job": 1.0, "user": None,
                              "key": {"k": "ssh-ed25519 AAAA"}, "nonce": 7}),
        "huge string": frame({"type": "hello", "key": "ssh-ed25519 " + "é" * 5000}),
        "not an object": framed(b"[1,2,3]"),
        "empty": b"",
    }[kind]


def test_thousand_malformed_connections_then_a_session_still_works(bench: Workbench,
                                                                   job: Job) -> None:
    where = address(job_record(bench.root / "queue", job.id))
    pid = job.process.pid
    assert bench.ssh(job.host, "true").returncode == 0    # the starter's steady state
    assert wait_until(lambda: not sshd_children(pid))
    memory, baseline_threads = rss_kb(pid), threads(pid)
    rng = random.Random(16)
    requests = [malformed(rng, MALFORMED_KINDS[i % len(MALFORMED_KINDS)]) for i in range(1000)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda data: ask(where, data), requests))
    for data, replies in zip(requests, answers):
        assert replies and replies[-1]["type"] == "refused", (data[:60], replies)
        assert replies[-1]["code"] == Refusal.PROTOCOL
    assert_starter_unharmed(bench, job)
    assert rss_kb(pid) - memory < 16 * 1024, (memory, rss_kb(pid))
    assert wait_until(lambda: threads(pid) <= baseline_threads)
    result = bench.ssh(job.host, "echo $MARKER")
    assert result.returncode == 0 and result.stdout == b"only-in-the-job\n", result.stderr


def test_slow_client_is_cut_off_while_others_are_served(bench: Workbench, job: Job) -> None:
    """One byte a second: the handshake's deadline (10 s) ends it; meanwhile ssh works."""
    record = job_record(bench.root / "queue", job.id)
    hello = frame({"type": "hello", "proto": 1, "job": job.id, "user": record["owner"],
                   "key": public_line(user_key(bench.root)), "nonce": "ab" * 32})
    cut_off = threading.Event()
    started = time.monotonic()

    def drip() -> None:
        with socket.create_connection(address(record), timeout=20) as conn:
            try:
                for byte in hello:
                    conn.sendall(bytes([byte]))
                    time.sleep(1)
            except OSError:
                pass
            try:
                while conn.recv(4096):
                    pass
            except OSError:
                pass
        cut_off.set()
    threading.Thread(target=drip, daemon=True).start()
    for _ in range(3):
        result = bench.ssh(job.host, "echo served")
        assert result.returncode == 0 and result.stdout == b"served\n", result.stderr
    assert not cut_off.is_set(), "the slow client was dropped before its deadline"
    assert time.monotonic() - started < 8, "sessions waited for the slow client"
    assert cut_off.wait(15), "the slow client kept its connection past the deadline"
    assert 9 < time.monotonic() - started < 14
    assert_starter_unharmed(bench, job)


def test_oversized_length_allocates_nothing(bench: Workbench, job: Job) -> None:
    """A length field of 4 GiB is refused from the header alone."""
    record = job_record(bench.root / "queue", job.id)
    before = rss_kb(job.process.pid)
    for _ in range(50):
        replies = ask(address(record), struct.pack(">I", 2**32 - 1))
        assert replies[-1]["code"] == Refusal.PROTOCOL and "too large" in replies[-1]["message"]
    assert rss_kb(job.process.pid) - before < 8 * 1024


def test_stranger_sending_garbage_after_a_refusal_gets_nothing(bench: Workbench, job: Job) -> None:
    """After refusing, the starter hangs up: SSH bytes that follow reach no sshd."""
    record = job_record(bench.root / "queue", job.id)
    stranger = new_key(bench.root / "stranger")
    hello = frame({"type": "hello", "proto": 1, "job": job.id, "user": record["owner"],
                   "key": public_line(stranger), "nonce": "ab" * 32})
    replies = ask(address(record), hello + b"SSH-2.0-OpenSSH_9.2\r\n" + b"\0" * 1000)
    assert [r["type"] for r in replies] == ["refused"]
    assert replies[0]["code"] == Refusal.NOT_OWNER
    assert_starter_unharmed(bench, job)


def test_owners_odd_shell_list_still_opens_a_session(bench: Workbench, job: Job) -> None:
    """The hello's shells go into the session's setup script: odd ones (a lone surrogate,
    a newline, not a string) are dropped, not fatal."""
    record = job_record(bench.root / "queue", job.id)
    outcome = handshake(address(record), job.id, record["owner"], user_key(bench.root),
                        shells=["/\ud800", "/bin/sh\nrm -rf /", 7, None, "/bin/bash"],
                        starter_key=record["starter_key"])
    outcome.close()
    assert outcome.accepted and outcome.starter_proved, outcome.reply
    assert_starter_unharmed(bench, job)


class HostileStarter(FakeStarter):
    """A listener that answers a proxy's hello with ``reply`` and hangs up."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        super().__init__()

    def answer(self, conn: socket.socket) -> None:
        conn.recv(MAX_MESSAGE + 4)
        conn.sendall(self.reply)


HOSTILE_REPLIES = {
    "deep json": framed(b'{"type":"challenge","n":' + b"[" * 8000 + b"]" * 8000 + b"}"),
    "lying length": struct.pack(">I", 2**32 - 1) + b"{",
    "bad utf-8": framed(b'{"type":"challenge","nonce":"\xff\xfe"}'),
    "refusal of odd types": frame({"type": "refused", "code": ["not_owner"], "message": {"a": 1}}),
    "refusal with escapes": frame({"type": "refused", "code": "x", "message": "\x1b[2J\nspoof"}),
    "not an object": framed(b"[]"),
    "cut frame": framed(b'{"type":"challenge"}')[:9],
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_REPLIES))
def test_proxy_answers_a_hostile_starter_with_one_line(bench: Workbench, job: Job,
                                                       kind: str) -> None:
    """The proxy parses what a starter sends with the same decoder: garbage from the
    other end is one line on stderr and exit 255, never a traceback or a terminal escape."""
    starter = HostileStarter(HOSTILE_REPLIES[kind])
    host = plant_record(bench.root / "queue", job.id, 9100, starter.address)
    result = bench.proxy("connect", host, input=b"")
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 255
    assert len(lines) == 1 and lines[0].startswith("condor-job-proxy: "), lines
    assert lines[0].isprintable(), lines
