"""Slack's Socket Mode endpoint, for the emulator: the WebSocket an app opens with the URL that
`apps.connections.open` gives it (its app-level token), and the envelopes Slack sends on it.

Slack's side of the protocol: the WebSocket handshake (RFC 6455), a `hello` message, then one envelope per
request (`{"envelope_id", "type": "slash_commands" | "events_api" | "interactive", "payload",
"accepts_response_payload"}`), each acknowledged by the app with `{"envelope_id", "payload"?}`; pings are
answered with pongs. `deliver(...)` sends an envelope and returns the app's acknowledgement.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import struct
import threading
from typing import Any

Json = dict[str, Any]
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


class SocketModeServer:
    """One app's Socket Mode connection on 127.0.0.1 (ws://, as the emulator's Web API is http://)."""

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self.ticket = secrets.token_hex(8)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._stopping = threading.Event()
        self._lock = threading.Condition()
        self._connection: socket.socket | None = None
        self._send_lock = threading.Lock()
        self.acks: dict[str, Json] = {}
        self.connections = 0
        self._threads = [threading.Thread(target=self._accept, name="fake-socket-mode", daemon=True)]
        self._threads[0].start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._listener.getsockname()[1]}/link/?ticket={self.ticket}&app_id={self.app_id}"

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            if self._connection is not None:
                self._connection.close()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    # --- what a test does ----------------------------------------------------------------------------

    def wait_connected(self, timeout: float = 60.0) -> None:
        with self._lock:
            if not self._lock.wait_for(lambda: self._connection is not None, timeout):
                raise AssertionError(f"no app connected to Socket Mode within {timeout}s")

    def deliver(self, kind: str, payload: Json, timeout: float = 10.0) -> Json:
        """Send one envelope; the app's acknowledgement (its `payload`, if any, is the ack's body)."""
        envelope_id = secrets.token_hex(16)
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload, "accepts_response_payload": True}
        self.wait_connected(timeout)
        with self._lock:
            connection = self._connection
        assert connection is not None
        self._send(connection, TEXT, json.dumps(envelope).encode())
        with self._lock:
            if not self._lock.wait_for(lambda: envelope_id in self.acks, timeout):
                raise AssertionError(f"the app did not acknowledge the {kind} envelope within {timeout}s")
            return self.acks[envelope_id]

    # --- Slack's side ----------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(connection,), name="fake-socket-mode-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            reader = connection.makefile("rb")
            if not self._handshake(connection, reader):
                return
            hello = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": self.app_id}}
            self._send(connection, TEXT, json.dumps(hello).encode())
            with self._lock:
                self._connection = connection
                self.connections += 1
                self._lock.notify_all()
            try:
                while not self._stopping.is_set():
                    opcode, data = read_frame(reader)
                    if opcode == PING:
                        self._send(connection, PONG, data)
                    elif opcode == CLOSE:
                        self._send(connection, CLOSE, data[:2])
                        return
                    elif opcode == TEXT:
                        ack = json.loads(data)
                        with self._lock:
                            self.acks[ack["envelope_id"]] = ack
                            self._lock.notify_all()
            except (OSError, ConnectionError, ValueError):
                return
            finally:
                with self._lock:
                    if self._connection is connection:
                        self._connection = None

    def _handshake(self, connection: socket.socket, reader: Any) -> bool:
        request = [reader.readline().decode("latin-1").strip()]
        while request[-1]:
            request.append(reader.readline().decode("latin-1").strip())
        fields = (line.partition(":") for line in request[1:])
        headers = {name.strip().lower(): value.strip() for name, _, value in fields}
        if f"ticket={self.ticket}" not in request[0] or headers.get("upgrade", "").lower() != "websocket":
            connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return False
        accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + WEBSOCKET_GUID).encode()).digest())
        connection.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        return True

    def _send(self, connection: socket.socket, opcode: int, data: bytes) -> None:
        """A frame from the server: never masked (RFC 6455 5.1)."""
        length = len(data)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
        with self._send_lock:
            connection.sendall(header + data)


def read_frame(reader: Any) -> tuple[int, bytes]:
    """One frame from the client (always masked; RFC 6455 5.2); fragments are not used by slack_sdk."""
    first, second = _exactly(reader, 2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _exactly(reader, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _exactly(reader, 8))
    if not second & 0x80:
        raise ValueError("a client frame must be masked")
    mask = _exactly(reader, 4)
    data = bytes(byte ^ mask[i % 4] for i, byte in enumerate(_exactly(reader, length)))
    return first & 0x0F, data


def _exactly(reader: Any, size: int) -> bytes:
    data = reader.read(size)
    if len(data) < size:
        raise ConnectionError("the app closed its Socket Mode connection")
    return bytes(data)
