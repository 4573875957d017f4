"""The connections a starter accepted but that have not authenticated yet: bounded, and fair
between peers.

Anyone who can reach the starter's port can connect, and a handshake may take up to its
deadline. Nobody who has not authenticated may hold what the job's bookkeeping and its
sessions need (file descriptors, threads), so at most CAP connections are in the handshake at
once. One more pushes out the oldest connection of the peer that holds the most: a flood from
one account (or one remote address), idle or sending half a frame, evicts only its own
connections, and the owner's handshake, which takes milliseconds, goes through even while the
flood goes on. Once the flood stops, nothing of it is left to wait for.

A peer is the local account that owns the connecting socket, which the kernel tells for a
connection from this machine (sock_diag: one netlink round trip), else the remote address.
Peers are looked up only once the table is full: an ordinary connect costs nothing more.
"""
from __future__ import annotations

import socket
import struct
import threading
from collections import Counter

CAP = 128
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NO_COOKIE = 0xFFFFFFFF
_UID_OFFSET = 16 + 64   # nlmsghdr, then inet_diag_msg's family..wqueue before idiag_uid


class Handshakes:
    def __init__(self, cap: int = CAP) -> None:
        self.cap = cap
        self._open: dict[socket.socket, object] = {}   # oldest first -> peer (None: unknown)
        self._lock = threading.Lock()

    def admit(self, conn: socket.socket) -> None:
        """Count ``conn`` in; if the table is full, push out the greediest peer's oldest."""
        with self._lock:
            unknown = [c for c, peer in self._open.items() if peer is None]
            if len(self._open) < self.cap:
                self._open[conn] = None
                return
        peers = {c: peer_of(c) for c in [*unknown, conn]}   # outside the lock: round trips
        with self._lock:
            for held in unknown:
                if held in self._open:
                    self._open[held] = peers[held]
            self._open[conn] = peers[conn]
            while len(self._open) > self.cap:
                self._drop(self._greediest())

    def drop_one(self) -> None:
        """Push one out to free its file descriptor and thread (accept() ran out of them)."""
        with self._lock:
            if self._open:
                self._drop(self._greediest())

    def done(self, conn: socket.socket) -> bool:
        """Take ``conn`` out as its handshake ends; False if it was pushed out meanwhile."""
        with self._lock:
            if conn not in self._open:
                return False
            del self._open[conn]
            return True

    def _greediest(self) -> socket.socket:
        """The oldest connection of the peer holding the most (unknown peers count as one)."""
        counts = Counter(peer for peer in self._open.values() if peer is not None)
        most = max(counts.values(), default=1)
        for conn, peer in self._open.items():
            if counts.get(peer, 1) == most:
                return conn
        return next(iter(self._open))

    def _drop(self, conn: socket.socket) -> None:
        """Shut ``conn`` down: its thread's next read ends the handshake and closes it."""
        del self._open[conn]
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def peer_of(conn: socket.socket) -> tuple:
    """Who is at the other end: ("uid", N) for a socket of this machine, else ("address", IP)."""
    try:
        host, port = conn.getpeername()[:2]
        ours, our_port = conn.getsockname()[:2]
    except OSError:
        return ("gone", id(conn))
    uid = _local_uid(conn.family, (host, port), (ours, our_port))
    return ("uid", uid) if uid is not None else ("address", host)


def _local_uid(family: int, peer: tuple[str, int], ours: tuple[str, int]) -> int | None:
    """The uid owning the socket at ``peer`` connected to ``ours``, if it is on this machine:
    an exact sock_diag lookup of that one socket (as `ss` does), None if the kernel says no."""
    def address(host: str) -> bytes:
        return socket.inet_pton(family, host).ljust(16, b"\0")
    try:
        sockid = struct.pack(">HH", peer[1], ours[1]) + address(peer[0]) + address(ours[0]) + \
            struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
        request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
        header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST,
                             1, 0)
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as netlink:
            netlink.settimeout(0.5)
            netlink.send(header + request)
            reply = netlink.recv(4096)
    except (OSError, ValueError, struct.error):   # a scoped IPv6 address, no netlink: unknown
        return None
    kind = struct.unpack_from("=H", reply, 4)[0] if len(reply) >= _UID_OFFSET + 4 else None
    if kind != _SOCK_DIAG_BY_FAMILY:
        return None   # NLMSG_ERROR: no such socket here (a remote peer)
    return struct.unpack_from("=I", reply, _UID_OFFSET)[0]
