"""Signed task files: what a volunteer's bundle checks before it unpickles anything.

A task file is code the volunteer runs, fetched from the project's download tree. The master
signs each one with the project's task key (RSA, PKCS #1 v1.5, SHA-256; the private half stays in
``PROJECT/keys``, off the web-served tree) and the bundle verifies it with the public half, which
ships inside the app version BOINC's code signing covers. The signed form is::

    PYMW-TASK 2\\n  JSON header \\n  payload  \\nPYMW-SIG <hex signature>

signed over everything before ``\\nPYMW-SIG ``. The header, with the digests of the shared blobs
the task refers to, is inside the signed part, so a shared blob staged beside the task is checked
by its digest. Verifying is standard library only (``pow`` and a comparison with the one encoding
a signature may have), so every bundle platform runs it with nothing more to ship; signing needs
``cryptography`` and is the master's (``interfaces/kit/task_signing.py``).

A master signs its tasks a batch at a time (one RSA signature costs about a millisecond, more
than all the rest of a task's way to a work unit): the signature then covers the root of a Merkle
tree over the batch's signed parts, and each task file carries the path from its leaf to it::

    ...payload  \\nPYMW-SIGS <hex signature> <index> <count> <hex sibling digests>

The signed message is ``PYMW-TASKS 1\\n``, the count (8 bytes, big-endian) and the root. Leaves
and inner nodes are hashed with distinct prefixes (0x00, 0x01), and a node with no sibling goes
up as it is, so the path's length follows from index and count and is checked exactly.

A small task travels in its work unit's command line instead of a file: ``pack_command_line``
writes the batch trailer's signature and path as base64 of their bytes rather than hex
(``PART.SIGNATURE.INDEX.COUNT.PATH``, base64 words), and ``unpack_command_line`` rebuilds the
very file, which is then checked like any other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from pymw_admin.wire.boinc_contract import INLINE_TASK_MAX, INLINE_TASK_OPTION
from pymw_admin.wire.encoding import TASK_MAGIC

SIGNED_MAGIC = b"PYMW-TASK 2\n"
SIGNATURE_MARK = b"\nPYMW-SIG "
BATCH_SIGNATURE_MARK = b"\nPYMW-SIGS "
BATCH_MAGIC = b"PYMW-TASKS 1\n"
MAX_BATCH = 1 << 20  # tasks under one signature: a path of at most 20 digests
# DigestInfo of a SHA-256 digest (RFC 8017, section 9.2, note 1)
_SHA256_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
_RSA_OID = bytes.fromhex("06092a864886f70d010101")
MIN_BITS = 2048
MAX_BITS = 16384  # a key bigger than this is not one deploy-app made: refuse, do not pow() it


class SignatureError(ValueError):
    """A task file is unsigned, altered, or signed by another key."""


@dataclass(frozen=True)
class PublicKey:
    n: int
    e: int

    @property
    def size(self) -> int:
        return (self.n.bit_length() + 7) // 8


def _der(data: bytes, pos: int, tag: int) -> tuple[bytes, int]:
    """One DER element of type ``tag`` at ``pos``: (its contents, the position after it)."""
    if pos + 2 > len(data) or data[pos] != tag:
        raise SignatureError("not an RSA public key")
    length, pos = data[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or pos + count > len(data):
            raise SignatureError("not an RSA public key")
        length, pos = int.from_bytes(data[pos : pos + count], "big"), pos + count
    if pos + length > len(data):
        raise SignatureError("not an RSA public key")
    return data[pos : pos + length], pos + length


def load_public_pem(text: str | bytes) -> PublicKey:
    """An RSA public key from its PEM form (``BEGIN PUBLIC KEY``: SubjectPublicKeyInfo)."""
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    lines = [ln.strip() for ln in raw.strip().splitlines()]
    if len(lines) < 3 or lines[0] != "-----BEGIN PUBLIC KEY-----" \
            or lines[-1] != "-----END PUBLIC KEY-----":
        raise SignatureError("not a PEM public key")
    try:
        der = base64.b64decode("".join(lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("not a PEM public key") from None
    info, _ = _der(der, 0, 0x30)
    algorithm, pos = _der(info, 0, 0x30)
    if not algorithm.startswith(_RSA_OID):
        raise SignatureError("not an RSA public key")
    bits, _ = _der(info, pos, 0x03)
    if not bits or bits[0] != 0:
        raise SignatureError("not an RSA public key")
    numbers, _ = _der(bits, 1, 0x30)
    n_bytes, pos = _der(numbers, 0, 0x02)
    e_bytes, _ = _der(numbers, pos, 0x02)
    key = PublicKey(int.from_bytes(n_bytes, "big"), int.from_bytes(e_bytes, "big"))
    if not MIN_BITS <= key.n.bit_length() <= MAX_BITS or key.e < 3 or key.e % 2 == 0:
        raise SignatureError(f"unusable RSA public key ({key.n.bit_length()} bits)")
    return key


def verify(message: bytes | memoryview, signature: bytes, key: PublicKey) -> bool:
    """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017, 8.2.2): the signature, raised to ``e``, must be
    exactly the one encoding of the message's digest (built here and compared whole, never
    parsed, so no padding trick gets through)."""
    k = key.size
    if len(signature) != k:
        return False
    s = int.from_bytes(signature, "big")
    if s >= key.n:
        return False
    block = pow(s, key.e, key.n).to_bytes(k, "big")
    info = _SHA256_INFO + hashlib.sha256(message).digest()
    if k < len(info) + 11:
        return False
    wanted = b"\x00\x01" + b"\xff" * (k - len(info) - 3) + b"\x00" + info
    return hmac.compare_digest(block, wanted)


def is_signed(blob: bytes | memoryview) -> bool:
    return bytes(blob[: len(SIGNED_MAGIC)]) == SIGNED_MAGIC


def signed_form(task_file: bytes) -> bytes:
    """The part of a task file a signature covers (the signed magic, then the rest as it is)."""
    if not task_file.startswith(TASK_MAGIC):
        raise SignatureError("not a pymw task file")
    return SIGNED_MAGIC + task_file[len(TASK_MAGIC):]


def attach(signed_part: bytes, signature: bytes) -> bytes:
    return signed_part + SIGNATURE_MARK + signature.hex().encode()


def _leaf(signed_part: bytes | memoryview) -> bytes:
    digest = hashlib.sha256(b"\x00")
    digest.update(signed_part)
    return digest.digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def batch_message(root: bytes, count: int) -> bytes:
    """What a batch's one signature is over."""
    return BATCH_MAGIC + count.to_bytes(8, "big") + root


def merkle_paths(signed_parts: list[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """The root over the signed parts, and each part's path (sibling digests, leaf first)."""
    if not 0 < len(signed_parts) <= MAX_BATCH:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH} tasks")
    levels = [[_leaf(part) for part in signed_parts]]
    while len(levels[-1]) > 1:
        level = levels[-1]
        up = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:  # the last node has no sibling: it goes up as it is
            up.append(level[-1])
        levels.append(up)

    def path(index: int) -> list[bytes]:  # the walk _root_from makes back up
        siblings = []
        for level in levels[:-1]:
            if index ^ 1 < len(level):
                siblings.append(level[index ^ 1])
            index //= 2
        return siblings

    return levels[-1][0], [path(i) for i in range(len(signed_parts))]


def _root_from(leaf: bytes, index: int, count: int, path: list[bytes]) -> bytes | None:
    """The root a leaf's path leads to, or None when the path is not exactly as long as index
    and count call for."""
    digest, steps = leaf, iter(path)
    while count > 1:
        if index % 2 or index + 1 < count:
            sibling = next(steps, None)
            if sibling is None:
                return None
            digest = _node(sibling, digest) if index % 2 else _node(digest, sibling)
        index, count = index // 2, (count + 1) // 2
    return None if next(steps, None) is not None else digest


def attach_batch(signed_part: bytes, signature: bytes, index: int, count: int,
                 path: list[bytes]) -> bytes:
    return (signed_part + BATCH_SIGNATURE_MARK + signature.hex().encode()
            + b" %d %d " % (index, count) + b"".join(path).hex().encode())


def pack_command_line(task_file: bytes) -> str:
    """A task file as a command-line word: a batch-signed one as ``PART.SIG.INDEX.COUNT.PATH``
    (base64 of the signed part, the raw signature and the raw path: half the length of the hex
    trailer in base64), anything else as base64 of the whole. ``unpack_command_line`` gives the
    very bytes back; the signature is checked on those, as for a file."""
    mark = task_file.rfind(BATCH_SIGNATURE_MARK)
    fields = task_file[mark + len(BATCH_SIGNATURE_MARK):].split(b" ") if mark >= 0 else []
    if len(fields) == 4 and fields[1].isdigit() and fields[2].isdigit():
        try:
            signature, path = bytes.fromhex(fields[0].decode()), bytes.fromhex(fields[3].decode())
        except ValueError:
            signature = path = b""
        if attach_batch(task_file[:mark], signature, int(fields[1]), int(fields[2]),
                        [path]) == task_file:
            return ".".join((_b64(task_file[:mark]), _b64(signature), fields[1].decode(),
                             fields[2].decode(), _b64(path)))
    return _b64(task_file)


def command_line_option(task_file: bytes) -> str | None:
    """The work unit's command-line option that carries ``task_file`` instead of a file, or None
    when the task is too big for the line (it goes as a file). Whether the app's workers read it
    is the caller's to know (the ``inline-task`` feature)."""
    if len(task_file) > INLINE_TASK_MAX:
        return None
    return INLINE_TASK_OPTION + pack_command_line(task_file)


def unpack_command_line(word: str) -> bytes:
    """The task file ``pack_command_line`` made ``word`` from; SignatureError when it is not one
    (callers bound its length first)."""
    parts = word.split(".")
    try:
        if len(parts) == 1:
            return binascii.a2b_base64(word, strict_mode=True)
        if len(parts) == 5 and all(_canonical_number(p) for p in parts[2:4]):
            part, signature, path = (binascii.a2b_base64(parts[i], strict_mode=True)
                                     for i in (0, 1, 4))
            return attach_batch(part, signature, int(parts[2]), int(parts[3]), [path])
    except binascii.Error:
        pass
    raise SignatureError("the task in the command line is malformed")


def _canonical_number(text: str) -> bool:
    """Plain ASCII digits with no leading zero, at most 7 of them: one way to write each index
    and count, so a batch-signed task file has exactly one form (``04`` is not ``4``)."""
    return (0 < len(text) <= 7 and text.isascii() and text.isdigit()
            and (text == "0" or text[0] != "0"))


def _lower_hex(text: str) -> bytes:
    """Bytes from lowercase hex as the master writes it; ValueError for any other spelling
    (``bytes.fromhex`` takes capitals and skips whitespace: a second form of the same file)."""
    if text.strip("0123456789abcdef"):
        raise ValueError("not lowercase hex")
    return bytes.fromhex(text)


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _signature_of(hex_text: str, key: PublicKey) -> bytes:
    """A trailer's signature, which must be as long as the key's."""
    if len(hex_text) != 2 * key.size:
        raise SignatureError("the task file's signature does not match the project's key")
    try:
        return _lower_hex(hex_text)
    except ValueError:
        raise SignatureError("the task file's signature is malformed") from None


def _check_batch(blob: bytes, mark: int, key: PublicKey) -> None:
    try:
        fields = blob[mark + len(BATCH_SIGNATURE_MARK):].decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise SignatureError("the task file's signature is malformed") from None
    if len(fields) != 4 or not all(_canonical_number(f) for f in fields[1:3]):
        raise SignatureError("the task file's signature is malformed")
    index, count = int(fields[1]), int(fields[2])
    if not index < count <= MAX_BATCH or len(fields[3]) % 64 or len(fields[3]) > 64 * 20:
        raise SignatureError("the task file's signature is malformed")
    signature = _signature_of(fields[0], key)
    try:
        digests = _lower_hex(fields[3])
    except ValueError:
        raise SignatureError("the task file's signature is malformed") from None
    path = [digests[i : i + 32] for i in range(0, len(digests), 32)]
    root = _root_from(_leaf(memoryview(blob)[:mark]), index, count, path)
    if root is None or not verify(batch_message(root, count), signature, key):
        raise SignatureError("the task file was altered or signed with another key")


def open_task(blob: bytes, key: PublicKey | None) -> bytes:
    """The plain task file inside ``blob``, once its signature is checked with ``key``.

    ``key`` None is the trusted path (a rehearsal on this machine): a signed task is unwrapped
    unchecked and a plain one passes as it is. With a key, only a task it signed passes; anything
    else raises SignatureError, and nothing of it has been unpickled.
    """
    if not is_signed(blob):
        if key is None:
            return blob
        raise SignatureError("the task file is not signed")
    # the trailer ends the file: whichever mark comes last is it (a payload may hold either; all
    # before the real mark is signed, so a trailer added after it cannot pass)
    single, batch = blob.rfind(SIGNATURE_MARK), blob.rfind(BATCH_SIGNATURE_MARK)
    mark = max(single, batch)
    if mark < 0:
        raise SignatureError("the task file's signature is missing")
    if key is not None and mark == batch:
        _check_batch(blob, mark, key)
    elif key is not None:
        try:
            hex_text = blob[mark + len(SIGNATURE_MARK):].decode("ascii")
        except UnicodeDecodeError:
            raise SignatureError("the task file's signature is malformed") from None
        if not verify(memoryview(blob)[:mark], _signature_of(hex_text, key), key):
            raise SignatureError("the task file was altered or signed with another key")
    return TASK_MAGIC + blob[len(SIGNED_MAGIC):mark]


__all__ = ["BATCH_SIGNATURE_MARK", "SIGNATURE_MARK", "SIGNED_MAGIC", "PublicKey",
           "SignatureError", "attach", "attach_batch", "batch_message", "is_signed",
           "load_public_pem", "merkle_paths", "open_task", "pack_command_line", "signed_form",
           "unpack_command_line", "verify"]
