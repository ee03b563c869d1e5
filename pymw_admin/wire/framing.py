"""The persistent worker's wire format: length-prefixed frames, each a pickled list of blobs.

Master to worker, a frame carries task files; worker to master, result records. Batching several
blobs in one frame is what keeps short tasks from being bound by round trips.
"""

from __future__ import annotations

import json
import pickle
import struct
from typing import BinaryIO

from pymw_admin.wire.encoding import PICKLE_PROTOCOL

HEADER = struct.Struct(">I")


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def pack_batch(blobs: list[bytes]) -> bytes:
    """The body of a frame holding ``blobs``."""
    return pickle.dumps(blobs, protocol=PICKLE_PROTOCOL)


def unpack_batch(body: bytes | bytearray) -> list[bytes]:
    blobs: list[bytes] = pickle.loads(body)
    return blobs


def read_body(stream: BinaryIO) -> bytes | None:
    """The next frame's body from a blocking stream; None at end of stream."""
    head = stream.read(HEADER.size)
    if not head or len(head) < HEADER.size:
        return None
    size = HEADER.unpack(head)[0]
    body = stream.read(size)
    if body is None or len(body) < size:
        return None
    return body


class FrameBuffer:
    """Splits bytes read in arbitrary chunks (non-blocking reads) into frame bodies."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        bodies: list[bytes] = []
        while len(self._buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buffer)
            if len(self._buffer) < HEADER.size + size:
                break
            bodies.append(bytes(self._buffer[HEADER.size : HEADER.size + size]))
            del self._buffer[: HEADER.size + size]
        return bodies


# --- control records and shared-blob frames (NOTES: "Wire") --------------------------------------

SHARED_MAGIC = b"PYMW-SHARED 1\n"  # a frame of its own: magic, digest, newline, the blob
REVOKE_MAGIC = b"PYMW-REVOKE 1\n"  # in a task batch: drop these task ids if not started
REVOKED_MAGIC = b"PYMW-REVOKED 1\n"  # in a result batch: the ids actually dropped
FORGET_MAGIC = b"PYMW-FORGET 1\n"  # in a task batch: drop this shared blob
STARTED_MAGIC = b"PYMW-STARTED 1\n"  # in a result batch: these tasks started (and still run)


def shared_frame(digest: str, blob: bytes | memoryview) -> list[bytes | memoryview]:
    """A shared-blob frame as parts to write one after the other: the blob is never copied."""
    prefix = SHARED_MAGIC + digest.encode() + b"\n"
    return [HEADER.pack(len(prefix) + len(blob)), prefix, blob]


def split_shared(body: bytes | bytearray) -> tuple[str, memoryview] | None:
    """``(digest, blob)`` of a shared-blob frame body; None for any other frame."""
    if not body.startswith(SHARED_MAGIC):
        return None
    end = body.index(b"\n", len(SHARED_MAGIC))
    return bytes(body[len(SHARED_MAGIC) : end]).decode(), memoryview(body)[end + 1 :]


SHARED_AHEAD_MAGIC = b"PYMW-SHARED 2\n"  # a frame of its own: magic, the blob, its digest last
DIGEST_SIZE = 64  # a sha256 in hex


def shared_ahead_frame(blob: bytes | memoryview, digest: object) -> list[object]:
    """A shared-blob frame whose digest comes last: the blob is on its way while the master
    still hashes it. ``digest`` is whatever the writer turns into the 64 digest bytes at the
    end (a future)."""
    return [HEADER.pack(len(SHARED_AHEAD_MAGIC) + len(blob) + DIGEST_SIZE), SHARED_AHEAD_MAGIC,
            blob, digest]


def read_message(stream: BinaryIO) -> bytes | tuple[str, bytes] | None:
    """The next frame from a blocking stream: its body, or ``(digest, blob)`` for a shared-blob
    frame; None at end of stream.

    A shared blob is read into a bytes object of its own, so a large ``bytes`` object arrives
    with no further copy (slicing it out of the body would copy it once more).
    """

    def read(n: int) -> bytes | None:
        data = stream.read(n) if n else b""
        return data if data is not None and len(data) == n else None

    head = read(HEADER.size)
    if head is None:
        return None
    size = HEADER.unpack(head)[0]
    first = read(min(size, len(SHARED_MAGIC)))
    if first is None:
        return None
    rest_size = size - len(first)
    if first == SHARED_AHEAD_MAGIC and rest_size >= DIGEST_SIZE:
        blob, digest = read(rest_size - DIGEST_SIZE), read(DIGEST_SIZE)
        if blob is None or digest is None:
            return None
        return digest.decode(), blob
    if first == SHARED_MAGIC and rest_size > DIGEST_SIZE + 1:
        line = read(DIGEST_SIZE + 1)
        if line is None:
            return None
        if line.endswith(b"\n"):
            blob = read(rest_size - len(line))
            return None if blob is None else (line[:-1].decode(), blob)
        first += line
        rest_size -= len(line)
    rest = read(rest_size)
    if rest is None:
        return None
    shared = split_shared(first + rest) if first.startswith(SHARED_MAGIC) else None
    if shared is not None:  # a digest of another length
        return shared[0], bytes(shared[1])
    return first + rest if rest else first


def ids_record(magic: bytes, ids: list[str]) -> bytes:
    return magic + json.dumps(ids).encode()


def read_ids(magic: bytes, blob: bytes) -> list[str] | None:
    """The task ids of a REVOKE/REVOKED/STARTED record; None when ``blob`` is not one."""
    if not blob.startswith(magic):
        return None
    ids: list[str] = json.loads(blob[len(magic) :])
    return ids
