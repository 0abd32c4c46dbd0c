"""A slow, obvious byte-pair encoding used as an oracle for generator/bpe.py.

Nothing here imports generator/bpe.py. A word's segmentation is kept as one string
with a space between symbols ("l o w </w>"), and every step splits those strings
again and counts every pair from scratch. Settings are plain strings:

- end_of_word: "separate" (l o w </w>), "attached" (l o w</w>) or "none" (l o w);
- tie_rule: "first" (the tied pair whose first occurrence comes earliest, reading the
  corpus word by word, left to right) or "lexicographic" (the greatest tied pair,
  compared as a tuple of strings).

Example: reference_train([("aaa", 1)], num_merges=1, end_of_word="none") counts 2 for
(a, a), merges it and leaves the corpus as ["aa a"].
"""

from __future__ import annotations

from dataclasses import dataclass, field

MARKER = "</w>"


@dataclass
class ReferenceStep:
    counts: list[tuple[tuple[str, str], int]]  # every pair, in order of first occurrence
    max_count: int
    tied: list[tuple[str, str]]  # in order of first occurrence
    merge: tuple[str, str]
    corpus_after: list[str]  # one space-separated segmentation per word


@dataclass
class ReferenceTrace:
    initial_corpus: list[str]
    initial_vocab: set[str]
    steps: list[ReferenceStep] = field(default_factory=list)
    stop: str = ""  # "merges", "target_vocab", "no_pair" or "min_count"

    @property
    def merges(self) -> list[tuple[str, str]]:
        return [step.merge for step in self.steps]

    @property
    def vocab(self) -> set[str]:
        return self.initial_vocab | {a + b for a, b in self.merges}


def start_segmentation(word: str, end_of_word: str) -> str:
    """Write a word as its starting symbols: "low" -> "l o w </w>" when separate."""
    characters = [character for character in word]
    if end_of_word == "separate":
        characters.append(MARKER)
    elif end_of_word == "attached":
        characters[-1] = characters[-1] + MARKER
    elif end_of_word != "none":
        raise ValueError(f"unknown end_of_word {end_of_word!r}")
    return " ".join(characters)


def recount(corpus: list[str], frequencies: list[int]) -> list[tuple[tuple[str, str], int]]:
    """Count every adjacent pair inside each word, weighted by frequency, in first-occurrence order."""
    order: list[tuple[str, str]] = []
    totals: dict[tuple[str, str], int] = {}
    for segmentation, frequency in zip(corpus, frequencies):
        symbols = segmentation.split(" ")
        for position in range(len(symbols) - 1):
            pair = (symbols[position], symbols[position + 1])
            if pair not in totals:
                order.append(pair)
                totals[pair] = 0
            totals[pair] += frequency
    return [(pair, totals[pair]) for pair in order]


def merge_left_to_right(segmentation: str, pair: tuple[str, str]) -> str:
    """Merge each occurrence of pair, scanning left to right and never reusing a symbol."""
    symbols = segmentation.split(" ")
    output = []
    position = 0
    while position < len(symbols):
        at_pair = (position + 1 < len(symbols)
                   and symbols[position] == pair[0]
                   and symbols[position + 1] == pair[1])
        if at_pair:
            output.append(pair[0] + pair[1])
            position += 2
        else:
            output.append(symbols[position])
            position += 1
    return " ".join(output)


def reference_train(
    words: list[tuple[str, int]],
    num_merges: int | None = None,
    target_vocab: int | None = None,
    end_of_word: str = "separate",
    tie_rule: str = "first",
    min_count: int = 1,
) -> ReferenceTrace:
    """Train BPE and record every step. The stopping rules are checked before each merge."""
    frequencies = [frequency for _, frequency in words]
    corpus = [start_segmentation(word, end_of_word) for word, _ in words]
    initial_vocab = {symbol for segmentation in corpus for symbol in segmentation.split(" ")}
    trace = ReferenceTrace(initial_corpus=list(corpus), initial_vocab=initial_vocab)

    while True:
        if num_merges is not None and len(trace.steps) >= num_merges:
            trace.stop = "merges"
            return trace
        if target_vocab is not None and len(trace.vocab) >= target_vocab:
            trace.stop = "target_vocab"
            return trace
        counts = recount(corpus, frequencies)
        if not counts:
            trace.stop = "no_pair"
            return trace
        max_count = max(count for _, count in counts)
        if max_count < min_count:
            trace.stop = "min_count"
            return trace

        tied = [pair for pair, count in counts if count == max_count]
        if tie_rule == "first":
            merge = tied[0]
        elif tie_rule == "lexicographic":
            merge = sorted(tied)[-1]
        else:
            raise ValueError(f"unknown tie_rule {tie_rule!r}")

        corpus = [merge_left_to_right(segmentation, merge) for segmentation in corpus]
        trace.steps.append(ReferenceStep(counts, max_count, tied, merge, list(corpus)))


def reference_encode(word: str, merges: list[tuple[str, str]], end_of_word: str = "separate") -> list[str]:
    """Encode a word: merge the lowest-rank pair present, everywhere in the word, until none is present."""
    segmentation = start_segmentation(word, end_of_word)
    while True:
        symbols = segmentation.split(" ")
        present = {(symbols[i], symbols[i + 1]) for i in range(len(symbols) - 1)}
        ranked = [rank for rank, pair in enumerate(merges) if pair in present]
        if not ranked:
            return symbols
        segmentation = merge_left_to_right(segmentation, merges[min(ranked)])


def reference_branches(
    words: list[tuple[str, int]], num_merges: int, end_of_word: str = "separate",
) -> list[list[tuple[str, str]]]:
    """List every merge list that a run may produce when any tied pair may be merged at each step."""
    frequencies = [frequency for _, frequency in words]

    def extend(corpus: list[str], merges: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
        counts = recount(corpus, frequencies)
        if len(merges) == num_merges or not counts:
            return [merges]
        max_count = max(count for _, count in counts)
        runs = []
        for pair, count in counts:
            if count == max_count:
                runs.extend(extend([merge_left_to_right(s, pair) for s in corpus], merges + [pair]))
        return runs

    return extend([start_segmentation(word, end_of_word) for word, _ in words], [])
