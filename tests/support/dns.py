"""A DNS server on loopback that answers A queries from a table the test edits, so that services
can be found by name as a cluster's DNS would name them, with no root and no system resolver
change: gRPC asks it directly through a target ``dns://127.0.0.1:<port>/<name>:<port>``.

Only what gRPC's resolver asks is answered: A records from the table, an empty answer for other
types of a known name (AAAA, SRV, TXT), NXDOMAIN for an unknown name.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading

_A, _IN = 1, 1
_RESPONSE, _AUTHORITATIVE, _NXDOMAIN = 0x8000, 0x0400, 3
_TTL_S = 1
#: A compression pointer to the question's name, which starts right after the 12-byte header.
_NAME_POINTER = 0xC00C


def _question(packet: bytes) -> tuple[str, int, bytes]:
    """The first question's name (lower case), type, and its bytes as asked."""
    offset, labels = 12, []
    while packet[offset]:
        length = packet[offset]
        labels.append(packet[offset + 1 : offset + 1 + length].decode("ascii").lower())
        offset += 1 + length
    qtype, _ = struct.unpack(">HH", packet[offset + 1 : offset + 5])
    return ".".join(labels), qtype, packet[12 : offset + 5]


def answer(packet: bytes, records: dict[str, str]) -> bytes:
    """The reply to one query ``packet``, from ``records`` (name -> IPv4 address)."""
    ident, flags = struct.unpack(">HH", packet[:4])
    name, qtype, question = _question(packet)
    address = records.get(name)
    answers = b""
    if address is not None and qtype == _A:
        answers = struct.pack(">HHHIH", _NAME_POINTER, _A, _IN, _TTL_S, 4) + socket.inet_aton(address)
    code = 0 if address is not None else _NXDOMAIN
    header = struct.pack(
        ">HHHHHH", ident, _RESPONSE | _AUTHORITATIVE | (flags & 0x0100) | code, 1, 1 if answers else 0, 0, 0
    )
    return header + question + answers


class _Handler(socketserver.BaseRequestHandler):
    server: _UdpServer

    def handle(self) -> None:
        data, sock = self.request
        if len(data) > 12:
            sock.sendto(answer(data, self.server.records), self.client_address)


class _UdpServer(socketserver.ThreadingUDPServer):
    daemon_threads = True

    def __init__(self, records: dict[str, str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.records = records


class DnsServer:
    """Answers on 127.0.0.1 (UDP, in a thread of its own) from :attr:`records`, which the test
    may change at any time."""

    def __init__(self) -> None:
        self.records: dict[str, str] = {}
        self._server = _UdpServer(self.records)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-dns", daemon=True)
        self._thread.start()

    def target(self, name: str, port: int) -> str:
        """A gRPC target that resolves ``name`` through this server."""
        return f"dns://127.0.0.1:{self.port}/{name}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
