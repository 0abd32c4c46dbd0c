"""A slow, obvious byte-pair encoding, kept apart from generator/bpe.py to check its answers.

Words are plain lists of symbol strings and every step counts pairs again from
scratch, with no shared helper from generator/bpe.py. A question variant is accepted
only when this module and generator/bpe.py agree on its key.

Example, with `</w>` as a symbol of its own and ties broken by first occurrence:

    >>> valid_runs([("low", 1), ("lowish", 1)], 2, end_of_word="separate")
    [[('l', 'o'), ('lo', 'w')], [('o', 'w'), ('l', 'ow')]]
"""

from __future__ import annotations

MARKER = "</w>"


def start_symbols(word: str, end_of_word: str) -> list[str]:
    """Split a word into characters and add the end-of-word marker as the convention says."""
    symbols = [character for character in word]
    if end_of_word == "separate":
        symbols = symbols + [MARKER]
    elif end_of_word == "attached":
        symbols[-1] = symbols[-1] + MARKER
    return symbols


def pair_counts(corpus: list[tuple[list[str], int]]) -> list[tuple[tuple[str, str], int]]:
    """Count each adjacent pair inside each word, times the word's frequency.

    The result lists pairs in order of first occurrence, reading words in order.
    """
    order: list[tuple[str, str]] = []
    totals: dict[tuple[str, str], int] = {}
    for symbols, frequency in corpus:
        for position in range(len(symbols) - 1):
            pair = (symbols[position], symbols[position + 1])
            if pair not in totals:
                order.append(pair)
                totals[pair] = 0
            totals[pair] += frequency
    return [(pair, totals[pair]) for pair in order]


def apply_merge(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    """Merge every occurrence of pair, scanning left to right and never reusing a symbol."""
    result: list[str] = []
    position = 0
    while position < len(symbols):
        at_pair = position + 1 < len(symbols) and symbols[position] == pair[0] and symbols[position + 1] == pair[1]
        if at_pair:
            result.append(pair[0] + pair[1])
            position += 2
        else:
            result.append(symbols[position])
            position += 1
    return result


def tied_pairs(corpus: list[tuple[list[str], int]], min_count: int = 1) -> list[tuple[str, str]]:
    """Return the pairs that share the maximum count, or nothing when no pair reaches min_count."""
    counts = pair_counts(corpus)
    if not counts:
        return []
    best = max(count for _, count in counts)
    if best < min_count:
        return []
    return [pair for pair, count in counts if count == best]


def train(words: list[tuple[str, int]], num_merges: int, end_of_word: str = "separate",
          tie_rule: str = "first", min_count: int = 1) -> tuple[list[tuple[str, str]], dict[str, list[str]], bool]:
    """Return the merges, the final segmentation of each word and whether any step was a tie."""
    corpus = [(start_symbols(word, end_of_word), frequency) for word, frequency in words]
    merges: list[tuple[str, str]] = []
    had_tie = False
    while len(merges) < num_merges:
        tied = tied_pairs(corpus, min_count)
        if not tied:
            break
        if len(tied) > 1:
            had_tie = True
        chosen = tied[0] if tie_rule == "first" else sorted(tied)[-1]
        merges.append(chosen)
        corpus = [(apply_merge(symbols, chosen), frequency) for symbols, frequency in corpus]
    segmentation = {word: symbols for (word, _), (symbols, _) in zip(words, corpus)}
    return merges, segmentation, had_tie


def valid_runs(words: list[tuple[str, int]], num_merges: int, end_of_word: str = "separate",
               min_count: int = 1) -> list[list[tuple[str, str]]]:
    """Return every merge list a correct run can produce, taking each tied pair in turn."""
    corpus = [(start_symbols(word, end_of_word), frequency) for word, frequency in words]
    return _runs_from(corpus, num_merges, min_count)


def _runs_from(corpus, remaining: int, min_count: int) -> list[list[tuple[str, str]]]:
    tied = tied_pairs(corpus, min_count) if remaining > 0 else []
    if not tied:
        return [[]]
    runs = []
    for pair in tied:
        merged = [(apply_merge(symbols, pair), frequency) for symbols, frequency in corpus]
        for rest in _runs_from(merged, remaining - 1, min_count):
            runs.append([pair] + rest)
    return runs


def is_valid_run(words: list[tuple[str, int]], merges: list[tuple[str, str]], end_of_word: str = "separate",
                 min_count: int = 1) -> bool:
    """Check a merge list step by step: each merge must be one of the pairs tied for the maximum."""
    corpus = [(start_symbols(word, end_of_word), frequency) for word, frequency in words]
    for pair in merges:
        if pair not in tied_pairs(corpus, min_count):
            return False
        corpus = [(apply_merge(symbols, pair), frequency) for symbols, frequency in corpus]
    return True


def encode(word: str, merges: list[tuple[str, str]], end_of_word: str = "separate",
           known: set[str] | None = None, unseen: str = "keep") -> list[str]:
    """Encode a word by trying merges in rank order and applying the earliest one present, again and again."""
    symbols = start_symbols(word, end_of_word)
    if unseen == "unk" and known is not None:
        symbols = [_unknown_or_same(symbol, known) for symbol in symbols]
    while True:
        applied = False
        for pair in merges:
            present = any(symbols[i] == pair[0] and symbols[i + 1] == pair[1] for i in range(len(symbols) - 1))
            if present:
                symbols = apply_merge(symbols, pair)
                applied = True
                break
        if not applied:
            return symbols


def _unknown_or_same(symbol: str, known: set[str]) -> str:
    if symbol == MARKER:
        return symbol
    character = symbol[0]
    if character in known:
        return symbol
    return "[UNK]" + symbol[1:]


def vocabulary_size(words: list[tuple[str, int]], merges: list[tuple[str, str]], end_of_word: str = "separate") -> int:
    """Count the distinct starting symbols plus each merged symbol that is new."""
    vocabulary: list[str] = []
    for word, _ in words:
        for symbol in start_symbols(word, end_of_word):
            if symbol not in vocabulary:
                vocabulary.append(symbol)
    for left, right in merges:
        if left + right not in vocabulary:
            vocabulary.append(left + right)
    return len(vocabulary)
