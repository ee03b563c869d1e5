"""BOINC's code signatures, made on the admin's machine so the private key never is on the server.

BOINC (lib/crypt.cpp, ``sign_executable``) signs a file by RSA "private encryption" with PKCS #1
v1.5 type-1 padding of the file's MD5 as 32 lower-case hex characters (no DigestInfo), and writes
the result in hex, 32 bytes a line, then a line ``.``. Its key files are the same hex dump of its
``R_RSA_PRIVATE_KEY`` / ``R_RSA_PUBLIC_KEY`` structures after a first line with the bit count:
modulus, public exponent, private exponent (128 bytes each), then primes, prime exponents and the
CRT coefficient (64 bytes each), all big-endian and zero-padded. The client checks signatures
with ``code_sign_public``, which the project sends it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pymw_admin.errors import ConfigError

MODULUS_LEN = 128  # MAX_RSA_MODULUS_BITS 1024 in BOINC's crypt.h
PRIME_LEN = 64


@dataclass(frozen=True)
class PrivateKey:
    bits: int
    n: int
    e: int
    d: int


@dataclass(frozen=True)
class PublicKey:
    bits: int
    n: int
    e: int


def _hex_bytes(text: str, what: str) -> tuple[int, bytes]:
    lines = text.strip().splitlines()
    try:
        bits = int(lines[0].strip())
        body = "".join(line.strip() for line in lines[1:]).rstrip(".").strip()
        return bits, bytes.fromhex(body)
    except (IndexError, ValueError):
        raise ConfigError(f"{what} is not a BOINC key file") from None


def parse_private(text: str, what: str = "the signing key") -> PrivateKey:
    bits, data = _hex_bytes(text, what)
    if len(data) < 3 * MODULUS_LEN + 5 * PRIME_LEN:
        raise ConfigError(f"{what} is not a BOINC private key (too short)")
    n = int.from_bytes(data[:MODULUS_LEN], "big")
    e = int.from_bytes(data[MODULUS_LEN : 2 * MODULUS_LEN], "big")
    d = int.from_bytes(data[2 * MODULUS_LEN : 3 * MODULUS_LEN], "big")
    if not n or not d:
        raise ConfigError(f"{what} is not a BOINC private key")
    return PrivateKey(bits, n, e, d)


def parse_public(text: str, what: str = "the public key") -> PublicKey:
    bits, data = _hex_bytes(text, what)
    if len(data) < 2 * MODULUS_LEN:
        raise ConfigError(f"{what} is not a BOINC public key (too short)")
    return PublicKey(bits, int.from_bytes(data[:MODULUS_LEN], "big"),
                     int.from_bytes(data[MODULUS_LEN : 2 * MODULUS_LEN], "big"))


def load_private(path: Path) -> PrivateKey:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the signing key {path}: {exc.strerror or exc}") from None
    return parse_private(text, f"signing key {path}")


def hex_dump(data: bytes) -> str:
    """BOINC's sprint_hex_data: 32 bytes a line, then ``.``."""
    lines = [data[i : i + 32].hex() for i in range(0, len(data), 32)]
    return "\n".join(lines) + "\n.\n"


def md5_hex(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _size(n: int) -> int:
    return (n.bit_length() + 7) // 8


def sign_digest(md5: str, key: PrivateKey) -> str:
    """The signature text of a file whose MD5 (hex) is ``md5``."""
    k = _size(key.n)
    data = md5.encode()
    block = b"\x00\x01" + b"\xff" * (k - len(data) - 3) + b"\x00" + data
    signature = pow(int.from_bytes(block, "big"), key.d, key.n).to_bytes(k, "big")
    return hex_dump(signature)


def sign_file(path: Path, key: PrivateKey) -> str:
    return sign_digest(md5_hex(path), key)


def verify_digest(md5: str, signature_text: str, key: PublicKey) -> bool:
    """What the client does (check_file_signature): decrypt, unpad, compare."""
    try:
        signature = bytes.fromhex("".join(signature_text.split()).rstrip("."))
    except ValueError:
        return False
    k = _size(key.n)
    block = pow(int.from_bytes(signature, "big"), key.e, key.n).to_bytes(k, "big")
    if not block.startswith(b"\x00\x01") or b"\x00" not in block[2:]:
        return False
    return block[block.index(b"\x00", 2) + 1 :] == md5.encode()


def matches(private: PrivateKey, public: PublicKey) -> bool:
    return private.n == public.n and private.e == public.e


def generate(bits: int = 1024) -> tuple[str, str]:
    """A new key pair as BOINC key files (private, public): for tests and new projects."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    numbers = rsa.generate_private_key(public_exponent=65537, key_size=bits).private_numbers()
    pub = numbers.public_numbers

    def fixed(value: int, size: int) -> bytes:
        return value.to_bytes(size, "big")

    private = b"".join([
        fixed(pub.n, MODULUS_LEN), fixed(pub.e, MODULUS_LEN), fixed(numbers.d, MODULUS_LEN),
        fixed(numbers.p, PRIME_LEN), fixed(numbers.q, PRIME_LEN), fixed(numbers.dmp1, PRIME_LEN),
        fixed(numbers.dmq1, PRIME_LEN), fixed(numbers.iqmp, PRIME_LEN),
    ])
    public = fixed(pub.n, MODULUS_LEN) + fixed(pub.e, MODULUS_LEN)
    return f"{bits}\n{hex_dump(private)}", f"{bits}\n{hex_dump(public)}"
