"""The master's half of task signing: the project's task key, and a signature on every task file.

The key pair is the project's, made once by deploy-app as the project's owner
(``PROJECT/keys/pymw_task_private.pem``, 0600; the public half beside it and in every app version
as ``pymw_task_key``). The bundle refuses a task file this key did not sign
(``wire/signature.py`` has the format and the verifying half).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from pymw_admin.errors import EngineUnavailable
from pymw_admin.wire import signature
from pymw_admin.wire.boinc_contract import TASK_KEY_PRIVATE, TASK_KEY_PUBLIC

# BOINC signs the app version that ships the public half with a 1024-bit key: 2048 bits here
# is not the weakest link, and signing costs a third of 3072 bits' (about 1 ms a task)
KEY_BITS = 2048


def generate() -> tuple[bytes, bytes]:
    """A new task key pair as PEM: (private, public)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return private, public_pem(key)


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


class TaskSigner:
    """Signs task files with one private key."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key
        self.public_pem = public_pem(key)

    @classmethod
    def from_pem(cls, data: bytes, what: str = "the task key") -> TaskSigner:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise EngineUnavailable(f"{what} is not an unencrypted PEM private key") from None
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < signature.MIN_BITS:
            raise EngineUnavailable(f"{what} is not an RSA key of {signature.MIN_BITS} bits "
                                    "or more")
        return cls(key)

    @classmethod
    def for_project(cls, root: Path) -> TaskSigner:
        """The project's key; its file must be this user's and readable by nobody else."""
        path = root.joinpath(*TASK_KEY_PRIVATE)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise EngineUnavailable(
                f"the project at {root} has no task-signing key ({path.relative_to(root)}): "
                "run pymw-admin deploy-app, which makes it") from None
        except OSError as exc:
            raise EngineUnavailable(f"cannot open the task-signing key {path}: "
                                    f"{exc.strerror or exc}") from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() \
                    or info.st_mode & 0o077:
                raise EngineUnavailable(
                    f"the task-signing key {path} must be a file of this user's, mode 0600 "
                    f"(it is {stat.filemode(info.st_mode)}, uid {info.st_uid})")
            return cls.from_pem(f.read(1 << 16), f"the task-signing key {path}")

    def sign(self, task_file: bytes) -> bytes:
        """The signed form of a plain task file, under a signature of its own: the form masters
        staged before ``sign_batch``, which bundles still read."""
        signed_part = signature.signed_form(task_file)
        sig = self._key.sign(signed_part, padding.PKCS1v15(), hashes.SHA256())
        return signature.attach(signed_part, sig)

    def sign_batch(self, task_files: list[bytes]) -> list[bytes]:
        """The signed forms of a batch of task files, under one signature (over the root of a
        Merkle tree of them; each carries its path): a thousand tasks cost one RSA signature,
        which alone would cost more than all the rest of their way to work units."""
        signed_parts = [signature.signed_form(task_file) for task_file in task_files]
        root, paths = signature.merkle_paths(signed_parts)
        sig = self._key.sign(signature.batch_message(root, len(signed_parts)),
                             padding.PKCS1v15(), hashes.SHA256())
        return [signature.attach_batch(part, sig, i, len(signed_parts), path)
                for i, (part, path) in enumerate(zip(signed_parts, paths, strict=True))]


def public_key_file(root: Path) -> Path:
    return root.joinpath(*TASK_KEY_PUBLIC)


__all__ = ["KEY_BITS", "TaskSigner", "generate", "public_key_file", "public_pem"]
