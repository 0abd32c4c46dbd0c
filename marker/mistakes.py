"""The mistake library: deliberately wrong solvers whose answers the marker recognises.

When a wrong answer equals what one of these solvers gives on the same problem, the
feedback names that mistake. Picking another pair among those tied for the maximum
count is not a mistake, so no solver here varies the tie rule.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from generator import bpe
from generator.bpe import END_OF_WORD, BPEConventions, EndOfWord, Pair, Symbols

Corpus = list[tuple[Symbols, int]]

DESCRIPTIONS = {
    # BPE training
    "pairs_across_words": "counting pairs across word boundaries (pairs never span two words)",
    "frequencies_ignored": "counting each word once, ignoring its frequency",
    "end_marker_forgotten": "leaving out the end-of-word marker </w>",
    "overlaps_not_counted": "counting a repeated symbol without overlaps (a a a contains the pair a a twice)",
    "merged_right_to_left": "merging from the right (a a a merges to aa a, left to right)",
    "merged_overlaps": "merging overlapping pairs (a a a merges to aa a, not aaa)",
    # BPE encoding
    "left_to_right": "applying merges left to right through the word instead of lowest rank first",
    "by_frequency": "applying merges in order of their count instead of the order they were learned",
    "reverse_rank": "applying the latest merges first instead of the earliest",
    # Backpropagation
    "z_without_b": "leaving out b in z = W x + b",
    "y_is_t": "writing the target t as the output y",
    "softmax_negated": "taking the softmax of -z instead of z",
    "softmax_wrong_axis": "taking the softmax over the wrong axis (each entry on its own gives 1)",
    "softmax_without_exp": "normalising z without exponentiating it",
    "loss_without_minus": "leaving out the minus sign of L = -log y_t",
    "loss_log10": "using log base 10 instead of the natural log",
    "loss_all_classes": "summing -log y_i over every class instead of the target class only",
    "t_minus_y": "computing t - y instead of y - t",
    "delta_is_y": "using y instead of y - t",
    "transposed": "transposing dL/dW: x delta^T instead of delta x^T (K x D)",
    "dW_from_y": "multiplying y instead of delta = y - t by x^T",
    "W_delta": "computing W delta instead of W^T delta",
    "update_plus": "adding the gradient in the update instead of subtracting it",
    "update_without_eta": "leaving the learning rate out of the update",
}


def describe(name: str) -> str:
    return "the mistake of " + DESCRIPTIONS[name]


# BPE training: pair counts under a mistaken rule

def counts_across_words(corpus: Corpus) -> dict[Pair, int]:
    stream = [symbol for symbols, count in corpus for _ in range(count) for symbol in symbols]
    return bpe.count_pairs([(tuple(stream), 1)])


def counts_ignoring_frequency(corpus: Corpus) -> dict[Pair, int]:
    return bpe.count_pairs([(symbols, 1) for symbols, _ in corpus])


def counts_without_end_marker(corpus: Corpus) -> dict[Pair, int]:
    stripped = []
    for symbols, count in corpus:
        kept = tuple(s.removesuffix(END_OF_WORD) for s in symbols if s != END_OF_WORD)
        stripped.append((tuple(s for s in kept if s), count))
    return bpe.count_pairs(stripped)


def counts_without_overlap(corpus: Corpus) -> dict[Pair, int]:
    """Count each pair as the merge would replace it: a a a contains (a, a) once, not twice."""
    counts: dict[Pair, int] = {}
    for symbols, frequency in corpus:
        for pair in dict.fromkeys(zip(symbols, symbols[1:])):
            merged = bpe.merge_symbols(symbols, pair)
            counts[pair] = counts.get(pair, 0) + (len(symbols) - len(merged)) * frequency
    return counts


STEP_COUNTERS: dict[str, Callable[[Corpus], dict[Pair, int]]] = {
    "pairs_across_words": counts_across_words,
    "frequencies_ignored": counts_ignoring_frequency,
    "end_marker_forgotten": counts_without_end_marker,
    "overlaps_not_counted": counts_without_overlap,
}


def bpe_step_mistake(corpus: Corpus, merge: Pair, conventions: BPEConventions) -> str | None:
    """Name the mistaken counting rule under which merge is a most frequent pair, if any."""
    for name, counter in STEP_COUNTERS.items():
        if name == "end_marker_forgotten" and conventions.end_of_word is EndOfWord.NONE:
            continue
        counts = counter(corpus)
        if counts and counts.get(merge, 0) == max(counts.values()):
            return name
    return None


# BPE segmentation and encoding under a mistaken rule

def merge_right_to_left(symbols: Symbols, pair: Pair) -> Symbols:
    reversed_pair = (pair[1], pair[0])
    merged = bpe.merge_symbols(tuple(reversed(symbols)), reversed_pair)
    return tuple(s if s != reversed_pair[0] + reversed_pair[1] else pair[0] + pair[1] for s in reversed(merged))


def merge_overlapping(symbols: Symbols, pair: Pair) -> Symbols:
    """Merge a whole run of a repeated pair's symbol into one symbol: (a, a) turns a a a into aaa."""
    if pair[0] != pair[1]:
        return bpe.merge_symbols(symbols, pair)
    merged: list[str] = []
    in_run = False
    for symbol in symbols:
        if symbol == pair[0] and merged and (in_run or merged[-1] == pair[0]):
            merged[-1] += symbol
            in_run = True
        else:
            merged.append(symbol)
            in_run = False
    return tuple(merged)


def segmentation_mistakes(word: str, words: list[tuple[str, int]], merges: list[Pair],
                          conventions: BPEConventions) -> dict[str, list[str]]:
    """Return the segmentation of one training word under each mistaken rule that changes it."""
    symbols = bpe.split_word(word, conventions.end_of_word)
    right = symbols
    from_right = symbols
    overlapping = symbols
    for pair in merges:
        right = bpe.merge_symbols(right, pair)
        from_right = merge_right_to_left(from_right, pair)
        overlapping = merge_overlapping(overlapping, pair)
    found = {"merged_right_to_left": list(from_right), "merged_overlaps": list(overlapping)}
    if conventions.end_of_word is EndOfWord.SEPARATE and right[-1] == END_OF_WORD:
        found["end_marker_forgotten"] = list(right[:-1])
    return {name: tokens for name, tokens in found.items() if tokens != list(right)}


def encode_left_to_right(symbols: list[str], merges: list[Pair]) -> list[str]:
    """Merge the leftmost adjacent pair that is any learned merge, until none is left."""
    rules = set(merges)
    while True:
        for i in range(len(symbols) - 1):
            if (symbols[i], symbols[i + 1]) in rules:
                symbols = symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2:]
                break
        else:
            return symbols


def encoding_mistakes(word: str, merges: list[Pair], conventions: BPEConventions, known: set[str] | None,
                      merge_counts: list[int] | None) -> dict[str, list[str]]:
    """Return the encoding of a new word under each mistaken rule that changes it."""
    right = bpe.encode(word, merges, conventions, known)
    start = bpe.encode(word, [], conventions, known)
    found = {
        "left_to_right": encode_left_to_right(list(start), merges),
        "reverse_rank": bpe.encode(word, list(reversed(merges)), conventions, known),
    }
    if merge_counts is not None:
        order = sorted(range(len(merges)), key=lambda i: -merge_counts[i])
        found["by_frequency"] = bpe.encode(word, [merges[i] for i in order], conventions, known)
    if conventions.end_of_word is EndOfWord.SEPARATE and right[-1] == END_OF_WORD:
        found["end_marker_forgotten"] = right[:-1]
    return {name: tokens for name, tokens in found.items() if tokens != right}


# Backpropagation through a softmax layer, numerically. Each solver takes the problem
# (W, x, b, t, eta as floats) and the upstream values (z, y, delta, dL_dW, dL_db), and
# returns the mistaken value of one part, or None when the mistake cannot apply.

def _softmax(z: np.ndarray) -> np.ndarray:
    shifted = np.exp(z - z.max())
    return shifted / shifted.sum()


def _square(p) -> bool:
    return p.W.shape[0] == p.W.shape[1]


SOFTMAX_MISTAKES: dict[str, list[tuple[str, Callable]]] = {
    "z": [
        ("z_without_b", lambda p, v: p.W @ p.x if np.any(p.b) else None),
    ],
    "y": [
        ("y_is_t", lambda p, v: p.t),
        ("softmax_negated", lambda p, v: _softmax(-v["z"])),
        ("softmax_wrong_axis", lambda p, v: np.ones_like(v["z"])),
        ("softmax_without_exp", lambda p, v: v["z"] / v["z"].sum() if abs(v["z"].sum()) > 1e-12 else None),
    ],
    "L": [
        ("loss_without_minus", lambda p, v: float(np.log(v["y"][p.target])) if v["y"][p.target] > 0 else None),
        ("loss_log10", lambda p, v: float(-np.log10(v["y"][p.target])) if v["y"][p.target] > 0 else None),
        ("loss_all_classes", lambda p, v: float(-np.log(v["y"]).sum()) if np.all(v["y"] > 0) else None),
    ],
    "delta": [
        ("t_minus_y", lambda p, v: p.t - v["y"]),
        ("delta_is_y", lambda p, v: v["y"]),
    ],
    "dL_dW": [
        ("transposed", lambda p, v: np.outer(p.x, v["delta"])),
        ("t_minus_y", lambda p, v: np.outer(p.t - v["y"], p.x)),
        ("dW_from_y", lambda p, v: np.outer(v["y"], p.x)),
    ],
    "dL_db": [
        ("t_minus_y", lambda p, v: p.t - v["y"]),
        ("delta_is_y", lambda p, v: v["y"]),
    ],
    "dL_dx": [
        ("W_delta", lambda p, v: p.W @ v["delta"] if _square(p) else None),
        ("t_minus_y", lambda p, v: p.W.T @ (p.t - v["y"])),
    ],
    "W_new": [
        ("update_plus", lambda p, v: p.W + p.eta * v["dL_dW"]),
        ("update_without_eta", lambda p, v: p.W - v["dL_dW"]),
    ],
    "b_new": [
        ("update_plus", lambda p, v: p.b + p.eta * v["dL_db"]),
        ("update_without_eta", lambda p, v: p.b - v["dL_db"]),
    ],
}

# Mistake solvers per question type; another backpropagation type adds its own entry.
BACKPROP_MISTAKES: dict[str, dict[str, list[tuple[str, Callable]]]] = {
    "backprop_softmax": SOFTMAX_MISTAKES,
}


def mistaken_values(question_type: str, part_name: str, problem, upstream: dict) -> list[tuple[str, np.ndarray]]:
    """Run every mistake solver of one part; skip those whose inputs are missing or do not fit."""
    results = []
    for name, solver in BACKPROP_MISTAKES.get(question_type, {}).get(part_name, []):
        try:
            value = solver(problem, upstream)
        except (KeyError, ValueError, IndexError, TypeError, FloatingPointError, ZeroDivisionError):
            continue
        if value is not None:
            results.append((name, np.asarray(value, dtype=float)))
    return results
