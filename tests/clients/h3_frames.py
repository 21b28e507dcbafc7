"""Frame-level HTTP/3 cases for Kite's tests, on aioquic: requests that
RFC 9114 calls malformed, streams a client may not open, QPACK encoder
instructions past the table Kite advertises, and a client's GOAWAY.

    python h3_frames.py CASE PORT [repeat=N]

Each case runs on a fresh connection to 127.0.0.1:PORT (SNI localhost,
the certificate not checked: the server's is a test's own) and prints
one JSON object; with `repeat=N`, N fresh connections and a JSON list:

- `status`, `body` (latin-1) and `ended`: the case's request stream's
  response, if any;
- `resets` and `stops`: the RESET_STREAM and STOP_SENDING codes the
  server sent on that stream;
- `closed`: the code the server closed the connection with, or null;
- `goaway`: whether the server sent GOAWAY on its control stream;
- `after`: for cases that go on, the status of a second request on the
  same connection.
"""

import asyncio
import json
import ssl
import sys

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.buffer import encode_uint_var
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection, encode_frame
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StopSendingReceived, StreamReset

DEADLINE = 5.0


class Watched(H3Connection):
    """aioquic's HTTP/3 connection, noting the server's control frames
    (it keeps no record of a GOAWAY)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.control_frames = []

    def _check_control_frame_type(self, frame_type):
        self.control_frames.append(frame_type)
        return super()._check_control_frame_type(frame_type)


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = Watched(self._quic)
        self.streams = {}
        self.resets = {}
        self.stops = {}
        self.closed = None
        self.changed = asyncio.Event()

    def quic_event_received(self, event):
        if isinstance(event, StreamReset):
            self.resets.setdefault(event.stream_id, []).append(event.error_code)
        elif isinstance(event, StopSendingReceived):
            self.stops.setdefault(event.stream_id, []).append(event.error_code)
        elif isinstance(event, ConnectionTerminated):
            self.closed = event.error_code
        for h3_event in self.http.handle_event(event):
            stream = getattr(h3_event, "stream_id", None)
            if stream is None:
                continue
            response = self.streams.setdefault(stream, {"headers": [], "body": b"", "ended": False})
            if isinstance(h3_event, HeadersReceived):
                response["headers"].extend(h3_event.headers)
            elif isinstance(h3_event, DataReceived):
                response["body"] += h3_event.data
            if getattr(h3_event, "stream_ended", False):
                response["ended"] = True
        self.changed.set()

    async def until(self, done):
        """Waits until `done()` holds or the deadline passes."""
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE
        while not done() and loop.time() < end:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), end - loop.time())
            except asyncio.TimeoutError:
                break

    def send_head(self, path, extra=(), method="GET", end_stream=True):
        stream = self._quic.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path.encode()),
            *extra,
        ]
        self.http.send_headers(stream, headers, end_stream=end_stream)
        self.transmit()
        return stream

    def settled(self, stream):
        """The stream is answered, reset, or the connection is gone."""
        return lambda: (
            self.closed is not None
            or stream in self.resets
            or self.streams.get(stream, {}).get("ended", False)
        )

    def report(self, stream):
        response = self.streams.get(stream, {"headers": [], "body": b"", "ended": False})
        status = next((v.decode() for k, v in response["headers"] if k == b":status"), None)
        return {
            "status": status,
            "body": response["body"].decode("latin-1"),
            "ended": response["ended"],
            "resets": self.resets.get(stream, []),
            "stops": self.stops.get(stream, []),
            "closed": self.closed,
            "goaway": FrameType.GOAWAY in self.http.control_frames,
        }

    async def get_after(self, result):
        """A second request on the same connection, for cases that go on."""
        if self.closed is None:
            stream = self.send_head("/plaintext")
            await self.until(self.settled(stream))
            result["after"] = self.report(stream)["status"]
        else:
            result["after"] = None
        result["closed"] = self.closed
        return result


async def malformed_head(client, extra):
    stream = client.send_head("/plaintext", extra)
    await client.until(client.settled(stream))
    return await client.get_after(client.report(stream))


async def body_against_length(client, declared, sent, path="/echo"):
    stream = client.send_head(
        path, [(b"content-length", str(declared).encode())], method="POST", end_stream=False
    )
    client.http.send_data(stream, b"x" * sent, end_stream=True)
    client.transmit()
    await client.until(client.settled(stream))
    return await client.get_after(client.report(stream))


async def uni_stream(client, data):
    """Opens a unidirectional stream of the client's own with `data`, then
    sends a request: the server has read the stream by the time it
    accepts the request, so the request shows whether the connection
    went on."""
    stream = client._quic.get_next_available_stream_id(is_unidirectional=True)
    client._quic.send_stream_data(stream, data)
    return await client.get_after(client.report(-1))


async def encoder(client, data):
    """Writes `data` on aioquic's own QPACK encoder stream, then a request
    (as `uni_stream`)."""
    client._quic.send_stream_data(client.http._local_encoder_stream_id, data)
    return await client.get_after(client.report(-1))


async def big_head(client):
    """A head past the field-section limit, its body still to come."""
    stream = client.send_head(
        "/echo", [(b"x-big", b"a" * 20000)], method="POST", end_stream=False
    )
    await client.until(lambda: client.settled(stream)() and stream in client.stops)
    return await client.get_after(client.report(stream))


async def client_goaway(client):
    # A request first, so the connection is in use.
    stream = client.send_head("/plaintext")
    await client.until(client.settled(stream))
    client._quic.send_stream_data(
        client.http._local_control_stream_id, encode_frame(FrameType.GOAWAY, encode_uint_var(0))
    )
    client.transmit()
    await client.until(lambda: client.closed is not None)
    result = client.report(stream)
    # A request after the GOAWAY each side sent is not served.
    return result


CASES = {
    "connection_header": lambda c: malformed_head(c, [(b"connection", b"keep-alive")]),
    "keep_alive_header": lambda c: malformed_head(c, [(b"keep-alive", b"timeout=5")]),
    "transfer_encoding_header": lambda c: malformed_head(c, [(b"transfer-encoding", b"chunked")]),
    "te_gzip": lambda c: malformed_head(c, [(b"te", b"gzip")]),
    "te_trailers": lambda c: malformed_head(c, [(b"te", b"trailers")]),
    "content_length_short": lambda c: body_against_length(c, 10, 5),
    "content_length_long": lambda c: body_against_length(c, 5, 10),
    "content_length_exact": lambda c: body_against_length(c, 5, 5),
    "content_length_short_digest": lambda c: body_against_length(c, 10, 5, "/digest"),
    "push_stream": lambda c: uni_stream(c, b"\x01\x00"),
    "reserved_stream": lambda c: uni_stream(c, encode_uint_var(0x21) + b"ignored"),
    "encoder_capacity_over_max": lambda c: encoder(c, b"\x3f\x45"),
    "encoder_insert_at_zero": lambda c: encoder(c, b"\x42ab\x01c"),
    "encoder_capacity_zero": lambda c: encoder(c, b"\x20"),
    "big_head": big_head,
    "client_goaway": client_goaway,
}


async def run(case, port):
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name="localhost")
    configuration.verify_mode = ssl.CERT_NONE
    async with connect("127.0.0.1", port, configuration=configuration, create_protocol=Client) as client:
        return await CASES[case](client)


async def main():
    case, port = sys.argv[1], int(sys.argv[2])
    repeat = next((int(a.split("=")[1]) for a in sys.argv[3:] if a.startswith("repeat=")), None)
    if repeat is None:
        print(json.dumps(await run(case, port)))
    else:
        print(json.dumps([await run(case, port) for _ in range(repeat)]))


if __name__ == "__main__":
    asyncio.run(main())
