"""keel's binary file container: a versioned JSON header plus named binary blobs, checksummed.

Layout (all integers little-endian)::

    b"KEEL" | kind (4 ASCII bytes) | format version (u16) | header length (u32)
    | header (UTF-8 JSON) | blobs, back to back | CRC-32 of everything before it (u32)

The header lists the blobs as ``[[name, length], ...]`` in file order. A file
that is truncated, altered, of another kind or from a newer format version
raises FormatError naming the file.

>>> data = pack(b"TEST", 1, {"answer": 42}, {"raw": b"abc"})
>>> unpack(data, b"TEST", 1, "example")
({'answer': 42, 'format_version': 1}, {'raw': b'abc'})
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

from keel.errors import FormatError

_MAGIC = b"KEEL"
_PREFIX = struct.Struct("<4s4sHI")


def pack(kind: bytes, version: int, header: dict[str, Any], blobs: dict[str, bytes]) -> bytes:
    """Serialize a header and blobs into one checksummed byte string."""
    header = dict(header, blobs=[[name, len(blob)] for name, blob in blobs.items()])
    header_bytes = json.dumps(header, separators=(",", ":"), allow_nan=True).encode()
    body = b"".join(
        [_PREFIX.pack(_MAGIC, kind, version, len(header_bytes)), header_bytes, *blobs.values()]
    )
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(
    data: bytes, kind: bytes, max_version: int, source: str
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Check and split a container; ``source`` names the file in error messages."""
    what = {b"PROF": "profile", b"BASE": "baseline"}.get(kind, kind.decode())
    if len(data) < _PREFIX.size + 4:
        raise FormatError(f"{source}: not a keel {what} file (only {len(data)} bytes)")
    magic, found_kind, version, header_length = _PREFIX.unpack_from(data)
    if magic != _MAGIC:
        raise FormatError(f"{source}: not a keel file (it does not start with KEEL)")
    if found_kind != kind:
        raise FormatError(
            f"{source}: a keel {found_kind.decode(errors='replace')} file, not a {what} file"
        )
    if version > max_version:
        raise FormatError(
            f"{source}: {what} format version {version} is newer than this keel reads "
            f"(up to {max_version}); upgrade keel"
        )
    (stored_crc,) = struct.unpack_from("<I", data, len(data) - 4)
    if zlib.crc32(data[:-4]) != stored_crc:
        raise FormatError(
            f"{source}: the {what} file is truncated or corrupted (checksum mismatch)"
        )
    start = _PREFIX.size
    try:
        header = json.loads(data[start : start + header_length])
    except ValueError as error:
        raise FormatError(f"{source}: the {what} header is not valid JSON") from error
    blobs, offset = {}, start + header_length
    for name, length in header.pop("blobs"):
        blobs[name] = data[offset : offset + length]
        offset += length
    if offset != len(data) - 4:
        raise FormatError(f"{source}: the {what} file's blob table does not match its size")
    header["format_version"] = version
    return header, blobs
