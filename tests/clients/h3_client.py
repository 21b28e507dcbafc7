"""An HTTP/3 client on aioquic, for Kite's tests: an outside
implementation of QUIC and HTTP/3 talking to Kite.

    python h3_client.py PORT PATH [BODY_BYTES]

Connects to 127.0.0.1:PORT (SNI localhost, the certificate not checked:
the server's is a test's own), sends GET PATH, or POST PATH with
BODY_BYTES bytes of a repeating pattern when given, and prints one JSON
object: `status`, `headers` (a dict), `body` (latin-1) or, for a POST,
`body_length` and `body_matches` (whether the echo equals what was sent).
"""

import asyncio
import json
import ssl
import sys

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration

DEADLINE = 10.0


def pattern(n):
    return bytes((i * 7 + 3) % 251 for i in range(n))


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = H3Connection(self._quic)
        self.waiters = {}
        self.responses = {}

    def quic_event_received(self, event):
        for h3_event in self.http.handle_event(event):
            stream = getattr(h3_event, "stream_id", None)
            if stream is None:
                continue
            response = self.responses.setdefault(stream, {"headers": [], "body": b""})
            if isinstance(h3_event, HeadersReceived):
                response["headers"].extend(h3_event.headers)
            elif isinstance(h3_event, DataReceived):
                response["body"] += h3_event.data
            if getattr(h3_event, "stream_ended", False) and stream in self.waiters:
                self.waiters.pop(stream).set_result(response)

    async def request(self, method, path, body):
        stream = self._quic.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", path.encode()),
        ]
        if body is not None:
            headers.append((b"content-length", str(len(body)).encode()))
        self.http.send_headers(stream, headers, end_stream=body is None)
        if body is not None:
            self.http.send_data(stream, body, end_stream=True)
        waiter = asyncio.get_running_loop().create_future()
        self.waiters[stream] = waiter
        self.transmit()
        return await asyncio.wait_for(waiter, DEADLINE)


async def main():
    port = int(sys.argv[1])
    path = sys.argv[2]
    size = int(sys.argv[3]) if len(sys.argv) > 3 else None
    configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name="localhost")
    configuration.verify_mode = ssl.CERT_NONE
    body = pattern(size) if size is not None else None
    async with connect("127.0.0.1", port, configuration=configuration, create_protocol=Client) as client:
        response = await client.request("POST" if body is not None else "GET", path, body)
    headers = {}
    status = None
    for name, value in response["headers"]:
        if name == b":status":
            status = int(value)
        else:
            headers[name.decode()] = value.decode("latin-1")
    result = {"status": status, "headers": headers}
    if body is None:
        result["body"] = response["body"].decode("latin-1")
    else:
        result["body_length"] = len(response["body"])
        result["body_matches"] = response["body"] == body
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
