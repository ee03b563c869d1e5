"""The persistent worker's wire format: length-prefixed frames, each a pickled list of blobs.

Master to worker, a frame carries task files; worker to master, result records. Batching several
blobs in one frame is what keeps short tasks from being bound by round trips.
"""

from __future__ import annotations

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
