"""The course secret, and the seeds and codes derived from it for each student.

Every student's variant comes from a seed HMAC-SHA256(secret, "seed" | exam id | student id),
so the teacher can rebuild any paper and key from the roster and the secret. The paper
shows only a variant code, a different HMAC output, and a student who knows the tool
but not the secret can derive neither their own seed nor anyone else's. Fields are
joined with the byte 0x1f so that ("ab", "c") and ("a", "bc") give different messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

from generator.errors import InputFileError

log = logging.getLogger(__name__)

SECRET_BYTES = 32
# Fewer random bytes than this would make a secret that a search could find.
MIN_SECRET_BYTES = 16
FIELD_SEPARATOR = "\x1f"
VARIANT_CODE_CHARS = 10
FINGERPRINT_CHARS = 16


def _mac(secret: bytes, *fields: str) -> bytes:
    message = FIELD_SEPARATOR.join(fields).encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).digest()


def student_seed(secret: bytes, exam_id: str, student_id: str) -> int:
    """Return the 64-bit seed of a student's variant."""
    return int.from_bytes(_mac(secret, "seed", exam_id, student_id)[:8], "big")


def variant_code(secret: bytes, exam_id: str, student_id: str) -> str:
    """Return the code printed on a student's paper, e.g. "V-K3ZQ7M2XPA"."""
    digest = base64.b32encode(_mac(secret, "variant-code", exam_id, student_id)).decode("ascii")
    return "V-" + digest[:VARIANT_CODE_CHARS]


def fingerprint(secret: bytes) -> str:
    """Return a short id of the secret that the manifest records to tell two secrets apart."""
    return _mac(secret, "fingerprint").hex()[:FINGERPRINT_CHARS]


def load_or_create_secret(path: Path) -> tuple[bytes, bool]:
    """Read the secret at `path`, or create it with mode 0600; return it and whether it is new."""
    path = Path(path)
    if path.exists():
        return read_secret(path), False
    path.parent.mkdir(parents=True, exist_ok=True)
    text = secrets.token_hex(SECRET_BYTES) + "\n"
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_secret(path), False
    with os.fdopen(handle, "w", encoding="ascii") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    return bytes.fromhex(text.strip()), True


def read_secret(path: Path) -> bytes:
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii").strip()
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as error:
        raise InputFileError(path, [f"cannot read the secret: {getattr(error, 'strerror', None) or error}"]) from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise InputFileError(path, ["the secret file must contain one line of hexadecimal digits; "
                                    "point --secret at the file that the first run created"]) from None
    if len(secret) < MIN_SECRET_BYTES:
        raise InputFileError(path, [f"the secret has {len(secret)} bytes; at least {MIN_SECRET_BYTES} are needed"])
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s can be read by other users; restrict it with: chmod 600 %s", path, path)
    return secret
