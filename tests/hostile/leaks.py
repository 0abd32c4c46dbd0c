"""Find answer-key values, seeds and secrets in text that students see.

A key value counts as a leak only where it could not appear by chance: decimals are
matched as whole numbers, token sequences (merges, segmentations, encodings) as whole
tokens, and exact expressions with their spaces removed. Values that the paper gives
(the corpus, the merges of an encoding question, the matrices) are not secrets.
Integer answers and multiple-choice letters are not searched, because every paper
prints small integers and option letters.
"""

from __future__ import annotations

import re

DECIMAL = re.compile(r"^-?\d+\.\d+$")
# Exact expressions shorter than this (such as 1/2) also occur in the paper's own text.
MIN_EXACT_CHARS = 5
UNSEARCHED_KINDS = {"integer", "choice", "true_false", "short"}


def strings_in(value: object) -> list[str]:
    """Return every string and number inside a JSON-like value, as text."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings_in(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings_in(item)]
    if value is None or isinstance(value, bool):
        return []
    return [str(value)]


def key_secrets(question: dict) -> list[str]:
    """Return the key values of one key question that must not appear on its paper."""
    givens = set(strings_in(question["problem"]))
    secrets: list[str] = []
    for part in question["parts"]:
        if part["kind"] in UNSEARCHED_KINDS:
            continue
        if part["kind"] == "merge_list":
            # One merge such as "l o" also occurs in the printed example "l o w </w>".
            secrets.extend(merge_windows(part))
            continue
        values = strings_in(part["expected"]) + strings_in(part.get("decimal")) + strings_in(part.get("accepted"))
        for text in values:
            if text in givens or text.lstrip("-").isdigit() or is_plain_split(text):
                continue
            if DECIMAL.match(text) or " " in text or "</w>" in text or len(text) >= MIN_EXACT_CHARS:
                secrets.append(text)
    return list(dict.fromkeys(secrets))


def is_plain_split(text: str) -> bool:
    """Tell whether a segmentation is just the word's characters, which the paper's rules give away."""
    return all(len(token) == 1 or token == "</w>" for token in text.split())


def merge_windows(part: dict) -> list[str]:
    """Return each two consecutive merges of every accepted merge list, as a table row would print them."""
    lists = part.get("accepted") or [part["expected"]]
    return [f"{first} {second}" for merges in lists for first, second in zip(merges, merges[1:])]


def is_expression(secret: str) -> bool:
    math = secret.replace("</w>", "")
    return any(sign in math for sign in "()/*+^") or "exp" in math or "log" in math


def found_secrets(text: str, secrets: list[str]) -> list[str]:
    """Return the secrets that occur in `text` (already normalised: single spaces, ASCII minus)."""
    squeezed = re.sub(r"\s+", "", text).lower()
    found = []
    for secret in secrets:
        if DECIMAL.match(secret):
            hit = re.search(rf"(?<![\d.]){re.escape(secret)}(?!\d)", text)
        elif is_expression(secret):
            hit = re.sub(r"\s+", "", secret).replace("E", "e").lower() in squeezed
        else:
            # A token run may end at the punctuation that follows it in a sentence.
            hit = re.search(rf"(?<!\S){re.escape(secret)}(?=[\s;,.]|$)", text)
        if hit:
            found.append(secret)
    return found


def without_examples(text: str) -> str:
    """Drop each line's worked form examples ("e.g. ...", "such as ..."), which are the same on every paper."""
    return re.sub(r"(e\.g\.|such as)[^\n]*", "", text)
