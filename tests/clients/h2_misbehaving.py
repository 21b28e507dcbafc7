"""HTTP/2 clients that break the rules on purpose, for Kite's tests.

Each case connects to 127.0.0.1:PORT, does one bad thing with the `h2`
package (or raw frames from `hyperframe`), and prints one JSON object of
what the server did. The Rust tests assert on that object.

    python h2_misbehaving.py CASE PORT
"""

import json
import socket
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events
import hpack
from hyperframe.frame import ContinuationFrame, Frame, HeadersFrame

DEADLINE = 10.0


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def request(method, path, port):
    return [(":method", method), (":path", path), (":scheme", "http"), (":authority", f"127.0.0.1:{port}")]


def pump(sock, conn, until):
    """Feeds the server's bytes to `conn` until `until(events)` or EOF."""
    seen = []
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return seen, True
        if not data:
            return seen, True
        events = conn.receive_data(data)
        seen.extend(events)
        out = conn.data_to_send()
        if out:
            try:
                sock.sendall(out)
            except OSError:
                pass
        if until(seen):
            return seen, False
    return seen, False


def streams_over_the_limit(port):
    """Opens 101 streams before reading the server's SETTINGS; the 101st
    must be refused, and the first must still complete."""
    sock, conn = connect(port)
    ids = [1 + 2 * i for i in range(101)]
    for sid in ids:
        conn.send_headers(sid, request("POST", "/count", port), end_stream=False)
    sock.sendall(conn.data_to_send())
    resets, _ = pump(sock, conn, lambda ev: any(isinstance(e, h2.events.StreamReset) for e in ev))
    refused = {e.stream_id: int(e.error_code) for e in resets if isinstance(e, h2.events.StreamReset)}
    conn.send_data(1, b"four", end_stream=True)
    sock.sendall(conn.data_to_send())
    done, _ = pump(sock, conn, lambda ev: any(isinstance(e, h2.events.StreamEnded) and e.stream_id == 1 for e in ev))
    status = next((dict(e.headers).get(":status") for e in done if isinstance(e, h2.events.ResponseReceived)), None)
    body = b"".join(e.data for e in done if isinstance(e, h2.events.DataReceived) and e.stream_id == 1)
    return {"refused": refused, "first_status": status, "first_body": body.decode()}


def rapid_reset(port):
    """Opens and at once resets 1,000 streams (CVE-2023-44487)."""
    sock, conn = connect(port)
    for i in range(1000):
        sid = 1 + 2 * i
        conn.send_headers(sid, request("GET", "/plaintext", port), end_stream=True)
        conn.reset_stream(sid, error_code=8)
    try:
        sock.sendall(conn.data_to_send())
    except OSError:
        pass
    events, closed = pump(sock, conn, lambda ev: any(isinstance(e, h2.events.ConnectionTerminated) for e in ev))
    goaway = next((int(e.error_code) for e in events if isinstance(e, h2.events.ConnectionTerminated)), None)
    answered = sum(1 for e in events if isinstance(e, h2.events.ResponseReceived))
    return {"goaway": goaway, "answered": answered, "closed": closed or goaway is not None}


class RawReader(threading.Thread):
    """Reads the server's frames without answering any of them."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self.frames = []
        self.closed_after = None
        self.started = time.monotonic()

    def run(self):
        buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.closed_after = time.monotonic() - self.started
                return
            frames, buf = split_frames(buf + data)
            self.frames.extend((time.monotonic() - self.started, frame) for frame in frames)

    def summary(self):
        kinds = [type(f).__name__ for _, f in self.frames]
        goaway = next((f.error_code for _, f in self.frames if type(f).__name__ == "GoAwayFrame"), None)
        resets = [f.error_code for _, f in self.frames if type(f).__name__ == "RstStreamFrame"]
        return {"frames": kinds, "goaway": goaway, "resets": resets, "closed_after": self.closed_after}


def split_frames(buf):
    """The whole frames at the front of `buf`, and the bytes after them."""
    frames = []
    while len(buf) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
        if len(buf) < 9 + length:
            break
        frame.parse_body(memoryview(buf[9 : 9 + length]))
        frames.append(frame)
        buf = buf[9 + length :]
    return frames, buf


def raw_connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    reader = RawReader(sock)
    reader.start()
    return sock, reader


def continuation_flood(port):
    """A HEADERS frame followed by CONTINUATION frames without end, up to
    32 MB of header block; the server must stop it long before."""
    sock, reader = raw_connect(port)
    block = hpack.Encoder().encode(request("GET", "/plaintext", port))
    sock.sendall(HeadersFrame(1, data=block, flags=["END_STREAM"]).serialize())
    field = b"\x00\x07x-flood\x64" + b"a" * 100
    payload = field * (16000 // len(field))
    sent = 0
    try:
        for _ in range(2000):
            sock.sendall(ContinuationFrame(1, data=payload).serialize())
            sent += 1
            if reader.closed_after is not None:
                break
    except OSError:
        pass
    reader.join(DEADLINE)
    return dict(reader.summary(), sent_frames=sent)


def hpack_bomb(port):
    """One 4 KB header indexed once, then referenced 200 times: 40 bytes on
    the wire decode to 800 KB."""
    sock, conn = connect(port)
    headers = request("GET", "/plaintext", port) + [("x-bomb", "a" * 4000)] * 200
    conn.send_headers(1, headers, end_stream=True)
    wire = conn.data_to_send()
    sock.sendall(wire)
    events, closed = pump(
        sock,
        conn,
        lambda ev: any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset, h2.events.ConnectionTerminated)) for e in ev),
    )
    status = next((dict(e.headers).get(":status") for e in events if isinstance(e, h2.events.ResponseReceived)), None)
    reset = next((int(e.error_code) for e in events if isinstance(e, h2.events.StreamReset)), None)
    goaway = next((int(e.error_code) for e in events if isinstance(e, h2.events.ConnectionTerminated)), None)
    return {"wire_bytes": len(wire), "status": status, "reset": reset, "goaway": goaway, "closed": closed}


def silent_peer(port):
    """Sends the preface and SETTINGS, then never answers anything, PING
    included."""
    sock, reader = raw_connect(port)
    reader.join(DEADLINE)
    pings = [t for t, f in reader.frames if type(f).__name__ == "PingFrame" and "ACK" not in f.flags]
    return dict(reader.summary(), first_ping_after=pings[0] if pings else None)


CASES = {
    "streams_over_the_limit": streams_over_the_limit,
    "rapid_reset": rapid_reset,
    "continuation_flood": continuation_flood,
    "hpack_bomb": hpack_bomb,
    "silent_peer": silent_peer,
}

if __name__ == "__main__":
    case, port = sys.argv[1], int(sys.argv[2])
    print(json.dumps(CASES[case](port)))
