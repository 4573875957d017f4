"""A hand-driven client of the session handshake, and a snapshot of what a job leaves behind.

Security tests must send what the proxy never would (another key, a replay, a splice,
garbage) and show that the starter answers each with a typed refusal and leaves nothing
behind. No pytest here.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from condor_job_proxy.common import sshsig
from condor_job_proxy.common.protocol import NONCE_BYTES, PROTOCOL_VERSION, Channel


def user_key(root: Path) -> Path:
    """The set-up user's job-access key, under a test's root (XDG_CONFIG_HOME=root/config)."""
    return root / "config" / "condor-job-proxy" / "id_ed25519"


def public_line(key_file: Path) -> str:
    """``type base64`` of a key pair's public half."""
    return " ".join(Path(f"{key_file}.pub").read_text().split()[:2])


def new_key(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name,
                    "-f", str(path)], check=True)
    return path


def job_record(queue: Path, job_id: str) -> dict:
    return json.loads((queue / f"{job_id}.json").read_text())


def plant_record(queue: Path, like_job: str, cluster: int, starter_address: str) -> str:
    """A record in the user's own queue naming ``like_job``'s starter key but another address:
    what an attacker who can answer on some address (not write the queue) would exploit.
    Returns the new job's host name."""
    record = dict(job_record(queue, like_job), cluster=cluster, proc=0,
                  starter_address=starter_address)
    path = queue / f"{cluster}.0.json"
    path.write_text(json.dumps(record))
    os.chmod(path, 0o644)
    return f"job-{cluster}.0"


def address(record: dict) -> tuple[str, int]:
    host, _, port = record["starter_address"].rpartition(":")
    return host.strip("[]"), int(port)


class RecordingSocket:
    """A socket that keeps every byte sent through it, so a handshake can be replayed."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.sent = sock, bytearray()

    def sendall(self, data: bytes) -> None:
        self.sent += data
        self.sock.sendall(data)

    def recv(self, count: int) -> bytes:
        return self.sock.recv(count)

    def settimeout(self, seconds: float | None) -> None:
        self.sock.settimeout(seconds)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Outcome:
    """How a hand-driven handshake ended: the starter's last message and the open channel."""
    reply: dict
    channel: Channel
    starter_proved: bool = False

    @property
    def accepted(self) -> bool:
        return self.reply.get("type") == "accept"

    def close(self) -> None:
        self.channel.sock.close()


def open_channel(where: tuple[str, int]) -> Channel:
    return Channel(RecordingSocket(socket.create_connection(where, timeout=10)))


def send_hello(channel: Channel, job: str, user: str, key: str, **fields: object) -> None:
    hello = {"proto": PROTOCOL_VERSION, "job": job, "user": user, "key": key,
             "nonce": os.urandom(NONCE_BYTES).hex(), **fields}
    channel.send("hello", **{k: v for k, v in hello.items() if v is not None})


def handshake(where: tuple[str, int], job: str, user: str, key_file: Path, *,
              offered_key: str | None = None, starter_key: str = "",
              **hello_fields: object) -> Outcome:
    """The client's side, done right except where told: offer ``offered_key`` (default: the
    key's own public half) but sign with ``key_file``."""
    channel = open_channel(where)
    send_hello(channel, job, user, offered_key or public_line(key_file), **hello_fields)
    challenge = channel.receive("challenge")
    if challenge["type"] == "refused":
        return Outcome(challenge, channel)
    channel.send("auth", sig=sshsig.sign(str(key_file), channel.transcript.signed_data("client")))
    return finish(channel, starter_key)


def finish(channel: Channel, starter_key: str = "") -> Outcome:
    """Read the starter's answer; check its signature when ``starter_key`` is given."""
    accept = channel.receive("accept")
    if accept["type"] == "refused":
        return Outcome(accept, channel)
    signed = channel.transcript.signed_data("server")
    sig = channel.receive("sig")
    proved = False
    if starter_key:
        sshsig.verify(starter_key, signed, sig["sig"])
        proved = True
    return Outcome(accept, channel, proved)


class FakeStarter:
    """A loopback listener where a job's starter should be: ``answer`` handles, in a thread,
    the one connection a proxy makes to it. Subclasses set their fields before calling
    ``__init__``, which starts listening."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def address(self) -> str:
        return "127.0.0.1:%d" % self.listener.getsockname()[1]

    def answer(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.listener.close()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(10)
                self.answer(conn)
        except OSError:
            pass
        finally:
            self.listener.close()
            self.done.set()


def read_frame(sock: socket.socket) -> bytes:
    """One whole frame (length and body) from a raw socket; b"" when the peer closed."""
    header = _read_exactly(sock, 4)
    if len(header) < 4:
        return b""
    return header + _read_exactly(sock, struct.unpack(">I", header)[0])


def frame(message: dict) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return struct.pack(">I", len(body)) + body


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


# --- what a job leaves on the machine -------------------------------------------------------------

def descendants(pid: int) -> set[int]:
    """All processes below ``pid`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def running_command(root_pid: int, cmdline: bytes) -> int | None:
    """The pid of a process below ``root_pid`` whose command line is exactly ``cmdline``."""
    for pid in descendants(root_pid):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline:
                return pid
        except OSError:
            pass
    return None


def listening_ports(pids: set[int]) -> set[tuple[str, int]]:
    """TCP (v4 and v6) addresses that any of ``pids`` listens on."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in os.scandir(f"/proc/{pid}/fd"):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:   # 0A: LISTEN
                host, port = fields[1].split(":")
                found.add((_address(host), int(port, 16)))
    return found


def _address(hex_host: str) -> str:
    raw = bytes.fromhex(hex_host)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
