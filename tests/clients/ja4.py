"""JA4 of a TLS ClientHello, computed apart from Kite's implementation,
from FoxIO's specification, to check Kite's against.

    python ja4.py HEX

HEX is the ClientHello handshake message (type 1, with its 4-byte header),
in hex. Prints the JA4 string.
"""

import hashlib
import sys


def grease(value):
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


def u16s(data):
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data) - 1, 2)]


def main():
    raw = bytes.fromhex(sys.argv[1])
    assert raw[0] == 1, "not a ClientHello"
    body = raw[4 : 4 + int.from_bytes(raw[1:4], "big")]
    legacy = int.from_bytes(body[0:2], "big")
    at = 2 + 32
    at += 1 + body[at]  # session id
    n = int.from_bytes(body[at : at + 2], "big")
    ciphers = u16s(body[at + 2 : at + 2 + n])
    at += 2 + n
    at += 1 + body[at]  # compression
    extensions = []
    if at < len(body):
        end = at + 2 + int.from_bytes(body[at : at + 2], "big")
        at += 2
        while at < end:
            kind = int.from_bytes(body[at : at + 2], "big")
            size = int.from_bytes(body[at + 2 : at + 4], "big")
            extensions.append((kind, body[at + 4 : at + 4 + size]))
            at += 4 + size
    data = dict(extensions)

    versions = [v for v in u16s(data[0x2B][1:]) if not grease(v)] if 0x2B in data else []
    version = max(versions) if versions else legacy
    codes = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3"}
    sni = "d" if 0x0000 in data else "i"
    ciphers = [c for c in ciphers if not grease(c)]
    kinds = [k for k, _ in extensions if not grease(k)]
    alpn = "00"
    if 0x10 in data:
        first = data[0x10][3 : 3 + data[0x10][2]]
        if first:
            a, z = chr(first[0]), chr(first[-1])
            if a.isascii() and a.isalnum() and z.isascii() and z.isalnum():
                alpn = a + z
            else:
                alpn = first.hex()[0] + first.hex()[-1]
    part_a = "t%s%s%02d%02d%s" % (codes.get(version, "00"), sni, min(len(ciphers), 99), min(len(kinds), 99), alpn)

    def digest(text):
        return hashlib.sha256(text.encode()).hexdigest()[:12] if text else "000000000000"

    part_b = digest(",".join("%04x" % c for c in sorted(ciphers)))
    signatures = [s for s in u16s(data[0x0D][2:]) if not grease(s)] if 0x0D in data else []
    text_c = ",".join("%04x" % k for k in sorted(k for k in kinds if k not in (0x0000, 0x0010)))
    if signatures:
        text_c += "_" + ",".join("%04x" % s for s in signatures)
    print("%s_%s_%s" % (part_a, part_b, digest(text_c)))


if __name__ == "__main__":
    main()
