"""GET a path over TLS with Python's ssl module (OpenSSL's ClientHello),
not checking the certificate, and print the response body.

    python tls_get.py PORT PATH
"""

import socket
import ssl
import sys

port, path = int(sys.argv[1]), sys.argv[2]
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path).encode())
        response = b""
        while True:
            chunk = tls.recv(65536)
            if not chunk:
                break
            response += chunk
print(response.split(b"\r\n\r\n", 1)[1].decode())
