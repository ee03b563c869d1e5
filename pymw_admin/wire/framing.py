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


_SHARED_PREFIX = len(SHARED_MAGIC) + 64 + 1  # magic, a sha256 hex digest, newline


def read_message(stream: BinaryIO) -> bytes | tuple[str, bytes] | None:
    """The next frame from a blocking stream: its body, or ``(digest, blob)`` for a shared-blob
    frame; None at end of stream.

    A shared blob is read into a bytes object of its own, so a large ``bytes`` object arrives
    with no further copy (slicing it out of the body would copy it once more).
    """
    head = stream.read(HEADER.size)
    if not head or len(head) < HEADER.size:
        return None
    size = HEADER.unpack(head)[0]
    first = stream.read(min(size, _SHARED_PREFIX))
    if len(first) < min(size, _SHARED_PREFIX):
        return None
    if size > _SHARED_PREFIX and first.startswith(SHARED_MAGIC) and first.endswith(b"\n"):
        rest = stream.read(size - len(first))
        if rest is None or len(rest) < size - len(first):
            return None
        return first[len(SHARED_MAGIC) : -1].decode(), rest
    rest = stream.read(size - len(first)) if size > len(first) else b""
    if rest is None or len(rest) < size - len(first):
        return None
    if not rest:
        return first
    shared = split_shared(first + rest)  # a shared frame with a digest of another length
    if shared is not None:
        return shared[0], bytes(shared[1])
    return first + rest


def ids_record(magic: bytes, ids: list[str]) -> bytes:
    return magic + json.dumps(ids).encode()


def read_ids(magic: bytes, blob: bytes) -> list[str] | None:
    """The task ids of a REVOKE/REVOKED record; None when ``blob`` is not one."""
    if not blob.startswith(magic):
        return None
    ids: list[str] = json.loads(blob[len(magic) :])
    return ids
