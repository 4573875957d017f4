"""Who gets into a job: each row of the authorization matrix against a real starter.

The proxy never sends anything but a well-formed handshake, so the rows that need a stranger,
a replay or a splice drive the handshake by hand (tests/handshake.py); the rows about the
starter's side (an impostor, a substituted sshd) put a man in the middle of a real ssh.
The queue super user's row runs in tests/test_htcondor_pool.py
(test_queue_super_user_gets_into_any_job), where super users are configured.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Job, Workbench, session_leftovers, sshd_children, wait_until
from handshake import (FakeStarter, address, finish, handshake, job_record, new_key,
                       open_channel, plant_record, public_line, read_frame, send_hello, user_key)
from condor_job_proxy.common import sshsig
from condor_job_proxy.common.protocol import Refusal
from test_connect_daemon import client_only, first_connect




def record_of(bench: Workbench, job: Job) -> dict:
    return job_record(bench.root / "queue", job.id)


def assert_nothing_started(bench: Workbench, job: Job) -> None:
    assert not session_leftovers(bench)
    assert not sshd_children(job.process.pid)


def test_owner_key_is_let_in_and_the_starter_proves_itself(bench: Workbench, job: Job) -> None:
    record = record_of(bench, job)
    outcome = handshake(address(record), job.id, record["owner"], user_key(bench.root),
                        starter_key=record["starter_key"])
    try:
        assert outcome.accepted and outcome.starter_proved
        assert outcome.reply["user"] == record["owner"]
        assert outcome.reply["host_key"].startswith("ssh-ed25519 ")
        assert wait_until(lambda: sshd_children(job.process.pid))
    finally:
        outcome.close()
    assert wait_until(lambda: not session_leftovers(bench))


def test_another_users_key_is_refused(bench: Workbench, job: Job) -> None:
    record = record_of(bench, job)
    stranger = new_key(bench.root / "stranger")
    outcome = handshake(address(record), job.id, record["owner"], stranger)
    assert outcome.reply["type"] == "refused" and outcome.reply["code"] == Refusal.NOT_OWNER
    assert_nothing_started(bench, job)


def test_hello_without_a_key_is_refused(bench: Workbench, job: Job) -> None:
    record = record_of(bench, job)
    for key in (None, "", "ssh-ed25519", "not a key at all"):
        channel = open_channel(address(record))
        send_hello(channel, job.id, record["owner"], key)
        reply = channel.receive("challenge")
        channel.sock.close()
        assert reply["type"] == "refused" and reply["code"] == Refusal.PROTOCOL, (key, reply)
    assert_nothing_started(bench, job)


def test_owners_public_key_without_its_private_half_is_refused(bench: Workbench, job: Job) -> None:
    """Offering the owner's public key (anyone may know it) and signing with another key, or
    not signing at all, gets nobody in."""
    record = record_of(bench, job)
    stranger = new_key(bench.root / "stranger")
    outcome = handshake(address(record), job.id, record["owner"], stranger,
                        offered_key=public_line(user_key(bench.root)))
    assert outcome.reply["code"] == Refusal.BAD_SIGNATURE, outcome.reply
    for sig in ("", "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"):
        channel = open_channel(address(record))
        send_hello(channel, job.id, record["owner"], public_line(user_key(bench.root)))
        assert channel.receive("challenge")["type"] == "challenge"
        channel.send("auth", sig=sig)
        reply = channel.receive("accept")
        channel.sock.close()
        assert reply["type"] == "refused" and reply["code"] in (Refusal.BAD_SIGNATURE,
                                                                 Refusal.PROTOCOL), reply
    assert_nothing_started(bench, job)


def test_key_authorized_for_another_job_is_refused(bench: Workbench) -> None:
    """A collaborator's key let into one job (--authorized-keys-file) opens only that job,
    and a hello meant for one job is refused by another job's starter."""
    collaborator = new_key(bench.root / "collaborator")
    shared = bench.start_job("sleep", "600",
                             starter_args=("--authorized-keys-file", f"{collaborator}.pub"))
    private = bench.start_job("sleep", "600")
    shared_record, private_record = record_of(bench, shared), record_of(bench, private)
    user = shared_record["owner"]
    allowed = handshake(address(shared_record), shared.id, user, collaborator)
    allowed.close()
    assert allowed.accepted, allowed.reply
    refused = handshake(address(private_record), private.id, user, collaborator)
    assert refused.reply["code"] == Refusal.NOT_OWNER, refused.reply
    misdirected = handshake(address(private_record), shared.id, user, user_key(bench.root))
    assert misdirected.reply["code"] == Refusal.WRONG_JOB, misdirected.reply
    assert not sshd_children(private.process.pid)


def test_key_taken_out_of_the_authorized_file_is_refused_at_once(bench: Workbench) -> None:
    """The starter reads --authorized-keys-file per handshake (parsing it again only once it
    changed): a key taken out is refused on the next connect, a key put in is let in."""
    collaborator, other = new_key(bench.root / "collaborator"), new_key(bench.root / "other")
    keys_file = bench.root / "authorized"
    keys_file.write_text(public_line(collaborator) + "\n")
    job = bench.start_job("sleep", "600", starter_args=("--authorized-keys-file", str(keys_file)))
    record = record_of(bench, job)

    def answer(key: Path) -> dict:
        outcome = handshake(address(record), job.id, record["owner"], key)
        outcome.close()
        return outcome.reply
    assert answer(collaborator)["type"] == "accept"
    keys_file.write_text(public_line(other) + "\n")   # same length: only the key differs
    assert answer(collaborator)["code"] == Refusal.NOT_OWNER
    assert answer(other)["type"] == "accept"


def test_starter_acknowledges_a_spare_session_under_its_signature(bench: Workbench,
                                                                   job: Job) -> None:
    """A client keeps a spare only from a starter that says, in its signed accept, that it took
    the session as one (it then neither counts it as open nor lets it hold the job open)."""
    record = record_of(bench, job)
    for asked in (True, False):
        fields = {"spare": True} if asked else {}
        outcome = handshake(address(record), job.id, record["owner"], user_key(bench.root),
                            starter_key=record["starter_key"], **fields)
        outcome.close()
        assert outcome.accepted and outcome.starter_proved
        assert outcome.reply.get("spare") is (True if asked else None)


def test_recorded_handshake_replayed_is_refused(bench: Workbench, job: Job) -> None:
    """Someone who recorded the bytes of a good handshake cannot play them back: the
    starter's fresh challenge makes the recorded signature worthless."""
    record = record_of(bench, job)
    good = handshake(address(record), job.id, record["owner"], user_key(bench.root))
    good.close()
    assert good.accepted
    recorded = bytes(good.channel.sock.sent)    # the client's hello and auth frames
    assert wait_until(lambda: not session_leftovers(bench))
    with socket.create_connection(address(record), timeout=10) as replay:
        replay.sendall(recorded)
        replay.shutdown(socket.SHUT_WR)
        answers = [read_frame(replay), read_frame(replay)]
    kinds = [json.loads(f[4:])["type"] for f in answers if f]
    assert kinds == ["challenge", "refused"], kinds
    assert json.loads(answers[1][4:])["code"] == Refusal.BAD_SIGNATURE
    assert_nothing_started(bench, job)


def test_messages_spliced_from_two_handshakes_are_refused(bench: Workbench, job: Job) -> None:
    """Two handshakes at once, with the owner's signature of one sent in the other: each
    signature covers its own transcript only."""
    record = record_of(bench, job)
    key = user_key(bench.root)
    first, second = open_channel(address(record)), open_channel(address(record))
    for channel in (first, second):
        send_hello(channel, job.id, record["owner"], public_line(key))
        assert channel.receive("challenge")["type"] == "challenge"
    first_sig = sshsig.sign(str(key), first.transcript.signed_data("client"))
    second.send("auth", sig=first_sig)
    spliced = finish(second)
    assert spliced.reply["code"] == Refusal.BAD_SIGNATURE, spliced.reply
    first.send("auth", sig=first_sig)     # where it belongs, it is good
    genuine = finish(first, record["starter_key"])
    first.sock.close()
    second.sock.close()
    assert genuine.accepted and genuine.starter_proved


# --- the starter's side: the proxy checks who answers --------------------------------------------

class Impostor(FakeStarter):
    """A listener that plays a starter: signs with its own key, or replays recorded frames,
    and records every byte the client sends after the handshake."""

    def __init__(self, key_file: Path | None = None, replay: list[bytes] | None = None) -> None:
        self.key_file, self.replay = key_file, replay
        self.after_handshake = bytearray()
        super().__init__()

    def answer(self, conn: socket.socket) -> None:
        if self.replay:
            read_frame(conn)                  # hello
            conn.sendall(self.replay[0])      # recorded challenge
            read_frame(conn)                  # auth
            conn.sendall(b"".join(self.replay[1:]))
        else:
            self._sign_as_impostor(conn)
        while chunk := conn.recv(4096):
            self.after_handshake += chunk

    def _sign_as_impostor(self, conn: socket.socket) -> None:
        from condor_job_proxy.common.protocol import Channel
        channel = Channel(conn)
        channel.receive("hello")
        channel.send("challenge", nonce=os.urandom(32).hex())
        channel.receive("auth")
        channel.send("accept", host_key=public_line(self.key_file), user=_me())
        channel.send("sig", sig=sshsig.sign(str(self.key_file),
                                            channel.transcript.signed_data("server")))




@pytest.mark.parametrize("via", ["full command", "connect daemon"])
def test_impostor_starter_is_detected_before_any_ssh_byte(bench: Workbench, job: Job,
                                                          via: str) -> None:
    options = []
    if via == "connect daemon":     # the daemon alone connects: the full command cannot run,
        first_connect(bench, job)   # so the fast client relays (it says the daemon's line)
        options = ["-o", f"ProxyCommand={client_only(bench)}", "-o", "ProxyUseFdpass=no"]
    impostor = Impostor(key_file=new_key(bench.root / "impostor"))
    host = plant_record(bench.root / "queue", job.id, 9001, impostor.address)
    try:
        result = bench.ssh(*options, host, "touch", str(bench.root / "ran"))
        assert impostor.done.wait(10)
    finally:
        impostor.close()
    assert result.returncode == 255
    assert "did not prove it holds the job's published key" in result.stderr.decode()
    assert impostor.after_handshake == b""
    assert not (bench.root / "ran").exists()


def test_starters_answer_replayed_to_a_new_connect_is_detected(bench: Workbench,
                                                              job: Job) -> None:
    """Someone who recorded a real starter's challenge, accept and signature (here: a relay
    on the path of a first connect) cannot answer a later connect with them: the proxy's own
    fresh nonce is in what the starter signed."""
    record_file = bench.root / "queue" / f"{job.id}.json"
    record = json.loads(record_file.read_text())
    recorder = Relay(address(record))
    record_file.write_text(json.dumps(dict(record, starter_address=recorder.address)))
    bench.ssh(job.host, "true")
    assert recorder.done.wait(10) and len(recorder.starter_frames) == 3
    # The starter republishes its record (its own address) once it has accounted for that
    # session's end, 0.25 s after it: let it, before pointing the record elsewhere.
    assert wait_until(lambda: not sshd_children(job.process.pid))
    time.sleep(1)
    impostor = Impostor(replay=recorder.starter_frames)
    record_file.write_text(json.dumps(dict(record, starter_address=impostor.address)))
    try:
        result = bench.ssh(job.host, "touch", str(bench.root / "ran"))
        assert impostor.done.wait(10)
    finally:
        impostor.close()
        record_file.write_text(json.dumps(record))
    assert result.returncode == 255
    assert "did not prove it holds the job's published key" in result.stderr.decode()
    assert impostor.after_handshake == b""
    assert not (bench.root / "ran").exists()


class Relay(FakeStarter):
    """A man in the middle that passes the handshake through to the real starter untouched
    (keeping the starter's frames), then does ``after`` with the client's connection."""

    def __init__(self, starter: tuple[str, int], after=lambda client: None) -> None:
        self.starter, self.after = starter, after
        self.starter_frames: list[bytes] = []
        super().__init__()

    def answer(self, client: socket.socket) -> None:
        with socket.create_connection(self.starter, timeout=10) as starter:
            for source, target, count in ((client, starter, 1), (starter, client, 1),
                                          (client, starter, 1), (starter, client, 2)):
                for _ in range(count):
                    data = read_frame(source)
                    if source is starter:
                        self.starter_frames.append(data)
                    target.sendall(data)
            client.settimeout(None)
            self.after(client)


class SwappedSshd:
    """An sshd of the man in the middle's own: its own host key, the user's key allowed."""

    def __init__(self, root: Path, user_key: Path) -> None:
        self.root = root
        root.mkdir()
        new_key(root / "host_key")
        (root / "authorized_keys").write_text(Path(f"{user_key}.pub").read_text())
        (root / "sshd_config").write_text(
            f"HostKey {root}/host_key\nAuthorizedKeysFile {root}/authorized_keys\nUsePAM no\n"
            "StrictModes no\nPidFile none\nPasswordAuthentication no\nLogLevel ERROR\n")
        self.process: subprocess.Popen | None = None

    def take(self, client: socket.socket) -> None:
        self.process = subprocess.Popen(
            ["/usr/sbin/sshd", "-i", "-f", str(self.root / "sshd_config")],
            stdin=client.fileno(), stdout=client.fileno(), stderr=subprocess.DEVNULL)

    def close(self) -> None:
        if self.process:
            self.process.kill()
            self.process.wait()


def test_sshd_with_another_host_key_is_rejected_by_ssh(bench: Workbench, job: Job) -> None:
    """Even with the handshake genuine, ssh talks only to the host key the starter signed:
    an sshd swapped in after the handshake does not get the session."""
    record_file = bench.root / "queue" / f"{job.id}.json"
    record = json.loads(record_file.read_text())
    sshd = SwappedSshd(bench.root / "swap", user_key(bench.root))
    relay = Relay(address(record), after=sshd.take)
    record_file.write_text(json.dumps(dict(record, starter_address=relay.address)))
    try:
        result = bench.ssh(job.host, "touch", str(bench.root / "ran"))
        assert relay.done.wait(10) and sshd.process
    finally:
        sshd.close()
        record_file.write_text(json.dumps(record))
    assert result.returncode == 255, result.stderr
    assert "Host key verification failed" in result.stderr.decode()
    assert not (bench.root / "ran").exists()


def _me() -> str:
    return subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
