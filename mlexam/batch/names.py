"""Student ids as file names: a readable slug, with a short hash whenever the slug alone could mislead.

    "s1234567"        -> "s1234567"
    "Ana María/../x"  -> "Ana_Mar_a_x-4f1c2a9b"

A safe name has only ASCII letters, digits, `.`, `_` and `-`, never starts with a dot
and is never `..`, so it cannot leave the folder it is put in.
"""

from __future__ import annotations

import hashlib
import re

UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")
# Slugs longer than this are cut; the hash then keeps them distinct.
MAX_SLUG_CHARS = 40
HASH_CHARS = 8
# Names that Windows reserves for devices, in any case and with any extension.
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}


def safe_name(student_id: str) -> str:
    """Return a file name for `student_id`: the id itself when it is already a safe name."""
    slug = UNSAFE_RUN.sub("_", student_id).strip("._-")[:MAX_SLUG_CHARS].rstrip("._-")
    reserved = slug.split(".")[0].upper() in WINDOWS_RESERVED
    if slug == student_id and slug and not reserved:
        return slug
    return f"{slug or 'student'}-{id_hash(student_id)}"


def id_hash(student_id: str) -> str:
    return hashlib.sha256(student_id.encode("utf-8")).hexdigest()[:HASH_CHARS]


def safe_names(student_ids: list[str]) -> dict[str, str]:
    """Map every id to a safe name that differs from every other one even on a case-insensitive disk."""
    names = {student_id: safe_name(student_id) for student_id in student_ids}
    folded: dict[str, list[str]] = {}
    for student_id, name in names.items():
        folded.setdefault(name.casefold(), []).append(student_id)
    for clash in (ids for ids in folded.values() if len(ids) > 1):
        for student_id in clash:
            names[student_id] = f"{names[student_id]}-{id_hash(student_id)}"
    return names
