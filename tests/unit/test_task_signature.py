"""Task-file signatures: ``cryptography`` signs on the master, the bundle's standard-library
verifier (wire/signature.py) must accept exactly what it signed and nothing else."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from pymw_admin.interfaces.kit.task_signing import TaskSigner, generate
from pymw_admin.wire import signature
from pymw_admin.wire.encoding import TASK_MAGIC, encode_task, read_task_header
from tests.doubles import task_key_pair


def _key(bits: int, exponent: int = 65537) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=exponent, key_size=bits)


def _public(key: rsa.RSAPrivateKey) -> signature.PublicKey:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return signature.load_public_pem(pem)


@pytest.mark.parametrize(("bits", "exponent"), [(2048, 65537), (3072, 65537), (2048, 3)])
def test_the_verifier_accepts_what_cryptography_signs(bits: int, exponent: int) -> None:
    key = _key(bits, exponent)
    public = _public(key)
    assert (public.n, public.e) == (key.public_key().public_numbers().n, exponent)
    for message in (b"", b"x", bytes(range(256)) * 100):
        sig = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        assert signature.verify(message, sig, public)
        assert signature.verify(memoryview(message), sig, public)
        assert not signature.verify(message + b"\0", sig, public)


def test_the_verifier_refuses_every_other_signature() -> None:
    key = _key(2048)
    public = _public(key)
    message = b"a task"
    good = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    others = {
        "sha1": key.sign(message, padding.PKCS1v15(), hashes.SHA1()),
        "sha512": key.sign(message, padding.PKCS1v15(), hashes.SHA512()),
        "pss": key.sign(message, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()),
        "another key": _key(2048).sign(message, padding.PKCS1v15(), hashes.SHA256()),
        "one bit": bytes([good[0] ^ 1]) + good[1:],
        "last bit": good[:-1] + bytes([good[-1] ^ 1]),
        "short": good[1:],
        "long": b"\0" + good,
        "empty": b"",
        "zero": bytes(len(good)),
        "one": (1).to_bytes(len(good), "big"),
        "n": public.n.to_bytes(len(good), "big"),
        "n + s": (public.n + int.from_bytes(good, "big")).to_bytes(len(good) + 1, "big"),
        "all ff": b"\xff" * len(good),
    }
    for name, sig in others.items():
        assert not signature.verify(message, sig, public), name


def test_a_signed_task_opens_to_the_same_task_file() -> None:
    private, public_pem = task_key_pair()
    signer = TaskSigner.from_pem(private)
    plain = encode_task("t1", divmod, (7, 2))
    signed = signer.sign(plain)
    assert signed.startswith(signature.SIGNED_MAGIC)
    # the header (with any shared blobs' digests) is inside the signed part
    assert read_task_header(plain)[0].task_id == "t1"
    key = signature.load_public_pem(public_pem)
    assert signature.open_task(signed, key) == plain
    assert signature.open_task(signed, None) == plain  # the trusted path unwraps unchecked
    assert signature.open_task(plain, None) == plain
    assert signer.public_pem == public_pem


def test_every_kind_of_tampering_is_refused() -> None:
    private, public_pem = task_key_pair()
    key = signature.load_public_pem(public_pem)
    plain = encode_task("t1", divmod, (7, 2))
    signed = TaskSigner.from_pem(private).sign(plain)
    header_end = signed.index(b"\n", len(signature.SIGNED_MAGIC))
    mark = signed.rindex(signature.SIGNATURE_MARK)
    flip = lambda blob, i: blob[:i] + bytes([blob[i] ^ 1]) + blob[i + 1:]  # noqa: E731
    cases = {
        "unsigned": plain,
        "header": flip(signed, len(signature.SIGNED_MAGIC) + 3),
        "payload": flip(signed, header_end + 5),
        "signature": flip(signed, len(signed) - 1),
        "appended": signed + b"x",
        "appended payload": signed[:mark] + b"more" + signed[mark:],
        "cut": signed[:-2],
        "no signature": signed[:mark],
        "not hex": signed[:-2] + b"zz",
        "unicode": signed[:-2] + "é".encode(),
        "other key": TaskSigner.from_pem(generate()[0]).sign(plain),
        "old magic + signature": TASK_MAGIC + signed[len(signature.SIGNED_MAGIC):],
        "empty": b"",
    }
    for name, blob in cases.items():
        with pytest.raises(signature.SignatureError):
            signature.open_task(blob, key)
            pytest.fail(f"{name} was accepted")


@pytest.mark.parametrize("text", [
    "", "not a key", "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
    "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n",
    "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(b"\x30\x84\xff\xff\xff\xff").decode()
    + "\n-----END PUBLIC KEY-----\n",
])
def test_a_malformed_public_key_is_refused(text: str) -> None:
    with pytest.raises(signature.SignatureError):
        signature.load_public_pem(text)


def test_keys_other_than_rsa_of_2048_bits_or_more_are_refused() -> None:
    small = _key(1024).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(signature.SignatureError, match="unusable"):
        signature.load_public_pem(small)
    pkcs1 = _key(2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    with pytest.raises(signature.SignatureError):
        signature.load_public_pem(pkcs1)
    curve = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(signature.SignatureError, match="not an RSA"):
        signature.load_public_pem(curve)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13, 1000])
def test_every_task_of_a_batch_opens_under_its_one_signature(count: int) -> None:
    private, public_pem = task_key_pair()
    key = signature.load_public_pem(public_pem)
    plains = [encode_task(f"t{i}", divmod, (i, 2)) for i in range(count)]
    signed = TaskSigner.from_pem(private).sign_batch(plains)
    assert len({s[s.rindex(signature.BATCH_SIGNATURE_MARK):].split(b" ")[1] for s in signed}) == 1
    for plain, blob in zip(plains, signed, strict=True):
        assert signature.open_task(blob, key) == plain
        assert signature.open_task(blob, None) == plain


def test_every_kind_of_tampering_with_a_batch_task_is_refused() -> None:
    private, public_pem = task_key_pair()
    key = signature.load_public_pem(public_pem)
    plains = [encode_task(f"t{i}", divmod, (i, 2)) for i in range(5)]
    signed = TaskSigner.from_pem(private).sign_batch(plains)
    third, fourth = signed[2], signed[3]
    mark = third.rindex(signature.BATCH_SIGNATURE_MARK)
    body, trailer = third[:mark], third[mark + len(signature.BATCH_SIGNATURE_MARK):]
    sig, index, count, path = trailer.split(b" ")
    other_body = fourth[:fourth.rindex(signature.BATCH_SIGNATURE_MARK)]
    flip = lambda blob, i: blob[:i] + bytes([blob[i] ^ 1]) + blob[i + 1:]  # noqa: E731

    def with_trailer(b: bytes = body, s: bytes = sig, i: bytes = index, c: bytes = count,
                     p: bytes = path) -> bytes:
        return b + signature.BATCH_SIGNATURE_MARK + b" ".join([s, i, c, p])

    cases = {
        "payload": flip(body, len(body) - 3),
        "another task's body under this path": with_trailer(b=other_body),
        "another index": with_trailer(i=b"3"),
        "index past the count": with_trailer(i=b"5"),
        "another count": with_trailer(c=b"4"),
        "count of one, no path": with_trailer(i=b"0", c=b"1", p=b""),
        "path one digest short": with_trailer(p=path[:-64]),
        "path one digest long": with_trailer(p=path + path[:64]),
        "path altered": with_trailer(p=flip(path, 10)),
        "signature altered": with_trailer(s=flip(sig, 4)),
        "negative index": with_trailer(i=b"-1"),
        "huge count": with_trailer(c=b"99999999"),
        "extra field": with_trailer() + b" 0",
        "not hex": with_trailer(p=b"zz" + path[2:]),
        "other key": TaskSigner.from_pem(generate()[0]).sign_batch(plains)[2],
        "appended": third + b"x",
        "single signature mark appended": third + signature.SIGNATURE_MARK + sig,
    }
    for name, blob in cases.items():
        with pytest.raises(signature.SignatureError):
            signature.open_task(blob, key)
            pytest.fail(f"{name} was accepted")
    assert signature.open_task(with_trailer(), key) == plains[2]  # the cases' own base is sound


def test_a_batch_task_file_has_one_spelling_only() -> None:
    """Index, count and hex as the master writes them, nothing else: ``04`` is not ``4``."""
    private, public_pem = task_key_pair()
    key = signature.load_public_pem(public_pem)
    plains = [encode_task(f"t{i}", divmod, (i, 2)) for i in range(5)]
    blob = TaskSigner.from_pem(private).sign_batch(plains)[4]
    mark = blob.rindex(signature.BATCH_SIGNATURE_MARK)
    sig, index, count, path = blob[mark + len(signature.BATCH_SIGNATURE_MARK):].split(b" ")
    assert (index, count) == (b"4", b"5")

    def with_trailer(s: bytes = sig, i: bytes = index, c: bytes = count, p: bytes = path
                     ) -> bytes:
        return blob[:mark] + signature.BATCH_SIGNATURE_MARK + b" ".join([s, i, c, p])

    assert signature.open_task(with_trailer(), key) == plains[4]
    for spelling in (with_trailer(i=b"04"), with_trailer(c=b"05"), with_trailer(i=b"+4"),
                     with_trailer(i=b"00000004"), with_trailer(s=sig.upper()),
                     with_trailer(p=path.upper()), with_trailer(p=path + b"\t" * 64)):
        with pytest.raises(signature.SignatureError, match="malformed"):
            signature.open_task(spelling, key)
    word = signature.pack_command_line(blob)
    part, sig64, index_text, count_text, path64 = word.split(".")
    for bad in (f"{part}.{sig64}.04.{count_text}.{path64}",
                f"{part}.{sig64}.{index_text}.05.{path64}",
                f"{part}.{sig64}.\u0664.{count_text}.{path64}"):  # an Arabic-Indic four
        with pytest.raises(signature.SignatureError, match="malformed"):
            signature.unpack_command_line(bad)
    first = TaskSigner.from_pem(private).sign_batch(plains)[0]
    assert b" 0 5 " in first and signature.open_task(first, key) == plains[0]  # "0" stays


@pytest.mark.parametrize("count", [1, 2, 1000])
def test_the_command_line_form_is_the_very_task_file_and_shorter(count: int) -> None:
    private, public_pem = task_key_pair()
    key = signature.load_public_pem(public_pem)
    plains = [encode_task(f"t{i}", divmod, (i, 2)) for i in range(count)]
    for blob in TaskSigner.from_pem(private).sign_batch(plains)[:3]:
        word = signature.pack_command_line(blob)
        assert word.count(".") == 4 and " " not in word
        assert signature.unpack_command_line(word) == blob
        # the trailer's hex is half its length as base64 of the bytes
        assert len(word) < len(base64.b64encode(blob)) * 2 // 3 + 60
        assert signature.open_task(signature.unpack_command_line(word), key) in plains
    for other in (plains[0], TaskSigner.from_pem(private).sign(plains[0]), b""):
        assert "." not in signature.pack_command_line(other)  # base64 of the whole
        assert signature.unpack_command_line(signature.pack_command_line(other)) == other


def test_a_malformed_command_line_form_is_refused_or_fails_its_check() -> None:
    private, public_pem = task_key_pair()
    key = signature.load_public_pem(public_pem)
    plains = [encode_task(f"t{i}", divmod, (i, 2)) for i in range(5)]
    word = signature.pack_command_line(TaskSigner.from_pem(private).sign_batch(plains)[2])
    part, sig, index, count, path = word.split(".")
    for bad in (f"{part}.{sig}.{index}.{count}", f"{part}.{sig}.-1.{count}.{path}",
                f"{part}.{sig}.{index}.99999999.{path}", f"{part}!.{sig}.{index}.{count}.{path}",
                f"{part}.{sig}.{index}.{count}.{path}.", "....", "not base64"):
        with pytest.raises(signature.SignatureError, match="malformed"):
            signature.unpack_command_line(bad)
    for altered in (f"{part}.{sig}.3.{count}.{path}", f"{part}.{sig}.{index}.4.{path}",
                    f"{part}.{path[:len(sig)]}.{index}.{count}.{path}",
                    f"{part}.{sig}.{index}.{count}.{sig[:len(path)]}",
                    f"{part[:-4]}.{sig}.{index}.{count}.{path}"):
        with pytest.raises(signature.SignatureError):
            signature.open_task(signature.unpack_command_line(altered), key)


def test_merkle_paths_lead_to_their_root() -> None:
    parts = [bytes([i]) * 3 for i in range(11)]
    root, paths = signature.merkle_paths(parts)
    for i, part in enumerate(parts):
        assert signature._root_from(signature._leaf(part), i, len(parts), paths[i]) == root
    with pytest.raises(ValueError):
        signature.merkle_paths([])
