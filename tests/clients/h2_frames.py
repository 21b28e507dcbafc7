"""Frame-level HTTP/2 request bodies for Kite's tests: the DATA cases of
an HTTP/2 conformance run, and clients that break the stream rules.

Each case writes its frames by hand (hyperframe, hpack) in one write, so
the server sees them together, then reads what the server sends until
the stream ends, is reset, or the connection closes, and prints one JSON
object that the Rust tests assert on:

    python h2_frames.py CASE PORT PATH [tls] [repeat=N]

With `tls`, the connection is TLS with ALPN h2 (the certificate is not
checked: the server's is a test's own). With `repeat=N`, the case runs N
times, each on a fresh connection, and a JSON list of N objects is
printed.

The `early_` cases answer-first: the request's head (and a first byte of
body) goes at once, and the frames that break a rule go only once the
response's head has arrived, so they land on a stream the server has
already answered, as they do when an application answers an upload
without reading it.

`status`, `body` (latin-1), `trailers` and `ended` are stream 1's
response; `resets`
lists [stream, code] of each RST_STREAM, `goaway` the GOAWAY's code.
"""

import json
import socket
import ssl
import sys
import time

import hpack
from h2_misbehaving import split_frames
from hyperframe.frame import (
    DataFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

DEADLINE = 10.0
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def body_bytes(n):
    """`n` bytes that differ from one position to the next."""
    return bytes((i * 7 + i // 251) % 256 for i in range(n))


class Exchange:
    # Set from the command line: every exchange of this run uses TLS.
    tls_default = False

    def __init__(self, port, path):
        self.port = port
        self.path = path
        self.tls = Exchange.tls_default
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.out = [PREFACE, SettingsFrame(0).serialize()]
        # Frames sent once stream 1's response head has arrived.
        self.after = []

    def later(self):
        """Frames written from now on wait for the response's head."""
        self.out, self.after = self.after, self.out

    def headers(self, stream, fields, end_stream=False):
        flags = ["END_HEADERS"] + (["END_STREAM"] if end_stream else [])
        self.out.append(HeadersFrame(stream, data=self.encoder.encode(fields), flags=flags).serialize())

    def request(self, stream=1, extra=(), end_stream=False, method="POST"):
        fields = [(":method", method), (":path", self.path), (":scheme", "http"),
                  (":authority", f"127.0.0.1:{self.port}")] + list(extra)
        self.headers(stream, fields, end_stream)

    def data(self, stream, payload, end_stream=False, pad=0):
        frame = DataFrame(stream, data=payload, flags=["END_STREAM"] if end_stream else [])
        if pad:
            frame.flags.add("PADDED")
            frame.pad_length = pad
        self.out.append(frame.serialize())

    def frame(self, frame):
        self.out.append(frame.serialize())

    def run(self):
        """Sends everything at once, then reads the server's frames until
        stream 1 is reset, the connection ends, or 0.3 s after the
        response ended."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)
        # Frames written after a read must not wait on a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["h2"])
            sock = context.wrap_socket(sock, server_hostname="localhost")
        if self.after:
            self.out, self.after = self.after, self.out
        sock.sendall(b"".join(self.out))
        result = {"status": None, "body": "", "trailers": None, "ended": False, "resets": [], "goaway": None,
                  "closed": False}
        body = b""
        buf = b""
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            frames, buf = split_frames(buf)
            for frame in frames:
                kind = type(frame).__name__
                if kind == "SettingsFrame" and "ACK" not in frame.flags:
                    sock.sendall(SettingsFrame(0, flags=["ACK"]).serialize())
                elif kind == "HeadersFrame" and frame.stream_id == 1:
                    fields = dict(self.decoder.decode(frame.data))
                    if result["status"] is None:
                        result["status"] = fields.get(":status")
                        if self.after:
                            sock.sendall(b"".join(self.after))
                            self.after = []
                    else:
                        result["trailers"] = fields
                    result["ended"] = result["ended"] or "END_STREAM" in frame.flags
                elif kind == "DataFrame" and frame.stream_id == 1:
                    body += frame.data
                    result["ended"] = result["ended"] or "END_STREAM" in frame.flags
                    if frame.data:
                        # Give the window back, as a client reading the body does.
                        sock.sendall(WindowUpdateFrame(0, window_increment=len(frame.data)).serialize()
                                     + WindowUpdateFrame(1, window_increment=len(frame.data)).serialize())
                elif kind == "RstStreamFrame":
                    result["resets"].append([frame.stream_id, frame.error_code])
                elif kind == "GoAwayFrame":
                    result["goaway"] = frame.error_code
            if result["goaway"] is not None or result["resets"]:
                break
            if result["ended"]:
                # A reset or GOAWAY that follows the response comes at once.
                sock.settimeout(0.3)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                data = b""
            if not data:
                result["closed"] = True
                break
            buf += data
        result["body"] = body.decode("latin-1")
        result["body_len"] = len(body)
        return result


# --- The DATA cases of a conformance run: each must be answered. ---

def data_frame(port, path):
    """HEADERS, then one DATA frame with END_STREAM."""
    x = Exchange(port, path)
    x.request()
    x.data(1, b"test", end_stream=True)
    return x.run()


def multiple_data_frames(port, path):
    """HEADERS, then two DATA frames, the last with END_STREAM."""
    x = Exchange(port, path)
    x.request()
    x.data(1, b"test")
    x.data(1, b"test", end_stream=True)
    return x.run()


def padded_data_frame(port, path):
    """A DATA frame with 8 bytes of padding: the padding is not body."""
    x = Exchange(port, path)
    x.request()
    x.data(1, b"test", end_stream=True, pad=8)
    return x.run()


def post_request(port, path):
    """A POST with a content-length that matches its DATA."""
    x = Exchange(port, path)
    x.request(extra=[("content-length", "4")])
    x.data(1, b"test", end_stream=True)
    return x.run()


def post_with_trailers(port, path):
    """A POST whose body ends with a trailer section."""
    x = Exchange(port, path)
    x.request(extra=[("trailer", "x-sum")])
    x.data(1, b"test")
    x.headers(1, [("x-sum", "4")], end_stream=True)
    return x.run()


def max_frame_size_data(port, path):
    """One DATA frame of 2^14 octets, the largest the default allows."""
    x = Exchange(port, path)
    x.request()
    x.data(1, body_bytes(16384), end_stream=True)
    return dict(x.run(), sent=body_bytes(16384).decode("latin-1"))


# --- Clients that break the stream rules: each gets the RFC's code. ---

def data_after_rst_stream(port, path):
    """HEADERS, RST_STREAM(CANCEL), then DATA on the closed stream
    (RFC 9113 5.1: STREAM_CLOSED)."""
    x = Exchange(port, path)
    x.request()
    x.frame(RstStreamFrame(1, error_code=8))
    x.data(1, b"test", end_stream=True)
    return x.run()


def second_headers_without_end_stream(port, path):
    """A second HEADERS frame that is not a trailer section: no
    END_STREAM (RFC 9113 8.1: PROTOCOL_ERROR)."""
    x = Exchange(port, path)
    x.request()
    x.data(1, b"test")
    x.headers(1, [("x-more", "1")], end_stream=False)
    return x.run()


def pseudo_header_in_trailers(port, path):
    """A trailer section with a pseudo-header (RFC 9113 8.1:
    PROTOCOL_ERROR)."""
    x = Exchange(port, path)
    x.request()
    x.data(1, b"test")
    x.headers(1, [(":path", "/"), ("x-sum", "4")], end_stream=True)
    return x.run()


def content_length_mismatch(port, path):
    """content-length 1 with 4 bytes of DATA (RFC 9113 8.1.1:
    PROTOCOL_ERROR)."""
    x = Exchange(port, path)
    x.request(extra=[("content-length", "1")])
    x.data(1, b"test", end_stream=True)
    return x.run()


def stream_window_overflow(port, path):
    """WINDOW_UPDATEs that take a stream's send window past 2^31-1
    (RFC 9113 6.9.1: FLOW_CONTROL_ERROR)."""
    x = Exchange(port, path)
    x.request()
    x.frame(WindowUpdateFrame(1, window_increment=2**31 - 1))
    x.frame(WindowUpdateFrame(1, window_increment=2**31 - 1))
    return x.run()


# --- The same rules broken after the server has answered. ---

def answered(port, path, extra=()):
    """An exchange whose request head and first body byte are out; what
    is added after this waits for the response's head."""
    x = Exchange(port, path)
    x.request(extra=list(extra))
    x.data(1, b"t")
    x.later()
    return x


def early_data_after_rst_stream(port, path):
    x = answered(port, path)
    x.frame(RstStreamFrame(1, error_code=8))
    x.data(1, b"est", end_stream=True)
    return x.run()


def early_second_headers_without_end_stream(port, path):
    x = answered(port, path)
    x.headers(1, [("x-more", "1")], end_stream=False)
    return x.run()


def early_pseudo_header_in_trailers(port, path):
    x = answered(port, path)
    x.headers(1, [(":path", "/"), ("x-sum", "4")], end_stream=True)
    return x.run()


def early_content_length_mismatch(port, path):
    x = answered(port, path, extra=[("content-length", "1")])
    x.data(1, b"est", end_stream=True)
    return x.run()


def early_stream_window_overflow(port, path):
    x = answered(port, path)
    x.frame(WindowUpdateFrame(1, window_increment=2**31 - 1))
    x.frame(WindowUpdateFrame(1, window_increment=2**31 - 1))
    return x.run()


def early_body_after_the_answer(port, path):
    """The rest of the body, after the answer: drained, no reset."""
    x = answered(port, path)
    for _ in range(3):
        x.data(1, body_bytes(16000))
    x.data(1, body_bytes(100), end_stream=True)
    return x.run()


def broken_preface(port, path):
    """The preface's request line with a wrong end (RFC 9113 3.4:
    PROTOCOL_ERROR, a connection error)."""
    x = Exchange(port, path)
    x.out = [b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", SettingsFrame(0).serialize()]
    return x.run()


CASES = {f.__name__: f for f in [
    early_data_after_rst_stream, early_second_headers_without_end_stream, early_pseudo_header_in_trailers,
    early_content_length_mismatch, early_stream_window_overflow, early_body_after_the_answer, broken_preface,
    data_frame, multiple_data_frames, padded_data_frame, post_request, post_with_trailers, max_frame_size_data,
    data_after_rst_stream, second_headers_without_end_stream, pseudo_header_in_trailers,
    content_length_mismatch, stream_window_overflow,
]}

if __name__ == "__main__":
    case, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    Exchange.tls_default = "tls" in sys.argv[4:]
    repeat = [int(a.split("=")[1]) for a in sys.argv[4:] if a.startswith("repeat=")]
    if repeat:
        print(json.dumps([CASES[case](port, path) for _ in range(repeat[0])]))
    else:
        print(json.dumps(CASES[case](port, path)))
