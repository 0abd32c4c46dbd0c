"""Byte-pair encoding: training with a full per-step trace, and encoding of new words.

Example, with the default conventions (separate `</w>`, tie rule `first`):

    >>> trace = train(read_corpus("low lowish"), num_merges=2)
    >>> [" ".join(step.merge) for step in trace.steps]
    ['l o', 'lo w']
    >>> encode("lowly", trace.merges)
    ['low', 'l', 'y', '</w>']

Step 1 above is a tie: `l o` and `o w` both occur twice, and the `first` rule takes
`l o` because it occurs earlier when reading the corpus in order.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from generator.errors import ProblemError

END_OF_WORD = "</w>"
UNKNOWN = "[UNK]"

Pair = tuple[str, str]
Symbols = tuple[str, ...]


class EndOfWord(StrEnum):
    """Placement of the end-of-word marker when a word is split into characters."""

    SEPARATE = "separate"  # l o w </w>, and </w> can be merged like any symbol
    ATTACHED = "attached"  # l o w</w>, as subword-nmt 0.2 and later do
    NONE = "none"  # l o w


class TieRule(StrEnum):
    """Rule that picks the key's merge when several pairs share the maximum count."""

    FIRST = "first"  # the tied pair that occurs earliest when reading the corpus in order
    LEXICOGRAPHIC = "lexicographic"  # the greatest tied pair, as subword-nmt breaks ties


class UnseenPolicy(StrEnum):
    """Treatment, when encoding, of a character that never occurred in training."""

    KEEP = "keep"  # the character stays a token of its own
    UNK = "unk"  # the character becomes the token [UNK]


@dataclass(frozen=True)
class BPEConventions:
    """The settings that change a BPE answer. Each one is printed on the question paper."""

    end_of_word: EndOfWord = EndOfWord.SEPARATE
    tie_rule: TieRule = TieRule.FIRST
    min_count: int = 1
    unseen: UnseenPolicy = UnseenPolicy.KEEP

    def to_dict(self) -> dict:
        return {
            "end_of_word": self.end_of_word.value,
            "tie_rule": self.tie_rule.value,
            "min_count": self.min_count,
            "unseen": self.unseen.value,
        }

    @classmethod
    def from_dict(cls, data: dict) -> BPEConventions:
        return cls(
            end_of_word=EndOfWord(data.get("end_of_word", "separate")),
            tie_rule=TieRule(data.get("tie_rule", "first")),
            min_count=int(data.get("min_count", 1)),
            unseen=UnseenPolicy(data.get("unseen", "keep")),
        )


@dataclass
class BPEStep:
    """One merge of a training run, as a worked solution shows it."""

    number: int
    pair_counts: list[tuple[Pair, int]]  # every adjacent pair, in order of first occurrence
    max_count: int
    tied: list[Pair]  # every pair whose count equals max_count, in order of first occurrence
    merge: Pair
    corpus_after: list[tuple[Symbols, int]]

    @property
    def new_symbol(self) -> str:
        return self.merge[0] + self.merge[1]

    @property
    def is_tie(self) -> bool:
        return len(self.tied) > 1


@dataclass
class BPETrace:
    """A complete training run: the start, every step, and why it stopped."""

    words: list[tuple[str, int]]
    conventions: BPEConventions
    initial_corpus: list[tuple[Symbols, int]]
    initial_vocab: list[str]
    steps: list[BPEStep] = field(default_factory=list)
    stop_reason: str = ""

    @property
    def merges(self) -> list[Pair]:
        return [step.merge for step in self.steps]

    @property
    def final_corpus(self) -> list[tuple[Symbols, int]]:
        return self.steps[-1].corpus_after if self.steps else self.initial_corpus

    @property
    def vocab(self) -> list[str]:
        """Return the initial vocabulary followed by each merged symbol that is new."""
        vocab = list(self.initial_vocab)
        for step in self.steps:
            if step.new_symbol not in vocab:
                vocab.append(step.new_symbol)
        return vocab

    def segmentation(self) -> dict[str, list[str]]:
        return {word: list(symbols) for (word, _), (symbols, _) in zip(self.words, self.final_corpus, strict=True)}


# Reading a corpus

_WORD_COUNT = re.compile(r"^(?P<word>[^\s:]+):(?P<count>[0-9]+)$")


def read_corpus(text: str) -> list[tuple[str, int]]:
    """Split text on whitespace into (word, frequency) pairs in order of first appearance.

    A repeated word raises that word's frequency: "low low new" gives [("low", 2), ("new", 1)].
    """
    counts = Counter(text.split())
    if not counts:
        raise ProblemError("corpus", text, "at least one word, for example 'low lower newest'")
    return list(counts.items())


def read_word_counts(items: list[str]) -> list[tuple[str, int]]:
    """Read "word:count" items such as ["low:5", "lower:2"]; a repeated word adds its counts."""
    counts: dict[str, int] = {}
    for item in items:
        match = _WORD_COUNT.match(item.strip())
        if match is None:
            raise ProblemError("word count", item, "word:count with a whole number, for example low:5")
        count = int(match["count"])
        if count < 1:
            raise ProblemError("word count", item, "a count of at least 1, for example low:5")
        counts[match["word"]] = counts.get(match["word"], 0) + count
    if not counts:
        raise ProblemError("corpus", "", "at least one word:count item, for example low:5 lower:2")
    return list(counts.items())


def split_word(word: str, end_of_word: EndOfWord = EndOfWord.SEPARATE) -> Symbols:
    """Split a word into its starting symbols: `low` -> ('l', 'o', 'w', '</w>') when separate."""
    if not word:
        raise ProblemError("word", word, "a non-empty word")
    if END_OF_WORD in word:
        raise ProblemError("word", word, f"a word without the text {END_OF_WORD}, which marks the end of a word")
    characters = list(word)
    if end_of_word is EndOfWord.SEPARATE:
        characters.append(END_OF_WORD)
    elif end_of_word is EndOfWord.ATTACHED:
        characters[-1] += END_OF_WORD
    return tuple(characters)


# Training

def count_pairs(corpus: list[tuple[Symbols, int]]) -> dict[Pair, int]:
    """Count adjacent pairs at every position, weighted by word frequency.

    The dict keeps the order in which pairs first occur when reading the corpus word by
    word, left to right; the `first` tie rule depends on it. `a a a` adds 2 to (a, a).
    """
    counts: dict[Pair, int] = {}
    for symbols, frequency in corpus:
        for pair in zip(symbols, symbols[1:]):
            counts[pair] = counts.get(pair, 0) + frequency
    return counts


def merge_symbols(symbols: Symbols, pair: Pair) -> Symbols:
    """Replace occurrences of pair left to right without overlap: merging (a, a) in a a a gives aa a."""
    merged: list[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            merged.append(pair[0] + pair[1])
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return tuple(merged)


def choose_merge(tied: list[Pair], rule: TieRule) -> Pair:
    """Pick one pair among the tied ones by the stated rule; tied is in first-occurrence order."""
    if rule is TieRule.FIRST:
        return tied[0]
    return max(tied)


def initial_vocab(corpus: list[tuple[Symbols, int]]) -> list[str]:
    """Return every starting symbol once, in order of first occurrence."""
    return list(dict.fromkeys(symbol for symbols, _ in corpus for symbol in symbols))


def train(
    words: list[tuple[str, int]],
    num_merges: int | None = None,
    target_vocab: int | None = None,
    conventions: BPEConventions = BPEConventions(),
    forced_merges: list[Pair] | None = None,
) -> BPETrace:
    """Learn merges from (word, frequency) pairs and record every step.

    Training stops after num_merges merges, when the vocabulary reaches target_vocab,
    when no pair is left, or when the maximum count falls below conventions.min_count.
    forced_merges, when given, takes the listed pair at each step instead of the tie
    rule; each forced pair must be among the tied maximum pairs of its step.
    """
    if num_merges is None and target_vocab is None:
        raise ProblemError("stopping rule", None, "a number of merges or a target vocabulary size")
    corpus = [(split_word(word, conventions.end_of_word), frequency) for word, frequency in words]
    trace = BPETrace(
        words=list(words),
        conventions=conventions,
        initial_corpus=corpus,
        initial_vocab=initial_vocab(corpus),
    )
    vocab_size = len(trace.initial_vocab)

    while True:
        # Stopping rules, checked before each merge.
        if num_merges is not None and len(trace.steps) >= num_merges:
            trace.stop_reason = f"{num_merges} merges made"
            break
        if target_vocab is not None and vocab_size >= target_vocab:
            trace.stop_reason = f"vocabulary size {vocab_size} reached the target {target_vocab}"
            break
        counts = count_pairs(corpus)
        if not counts:
            trace.stop_reason = "no pair left to merge"
            break
        max_count = max(counts.values())
        if max_count < conventions.min_count:
            trace.stop_reason = f"the maximum pair count {max_count} is below the minimum {conventions.min_count}"
            break

        # The pairs tied for the maximum, and the one merged.
        tied = [pair for pair, count in counts.items() if count == max_count]
        if forced_merges is not None:
            if len(trace.steps) >= len(forced_merges):
                trace.stop_reason = "the given merge list ended"
                break
            merge = forced_merges[len(trace.steps)]
            if merge not in tied:
                raise ProblemError(f"merge {len(trace.steps) + 1}", " ".join(merge),
                                   "one of the pairs tied for the maximum: " + ", ".join(" ".join(p) for p in tied))
        else:
            merge = choose_merge(tied, conventions.tie_rule)

        # The corpus after the merge.
        corpus = [(merge_symbols(symbols, merge), frequency) for symbols, frequency in corpus]
        if merge[0] + merge[1] not in trace.vocab:
            vocab_size += 1
        trace.steps.append(BPEStep(
            number=len(trace.steps) + 1,
            pair_counts=list(counts.items()),
            max_count=max_count,
            tied=tied,
            merge=merge,
            corpus_after=corpus,
        ))
    return trace


def all_branches(
    words: list[tuple[str, int]],
    num_merges: int,
    conventions: BPEConventions = BPEConventions(),
    limit: int = 10_000,
) -> list[list[Pair]]:
    """Return every merge list that a valid run of num_merges merges can produce.

    Each step may take any pair tied for the maximum. Raises ProblemError when there
    are more than limit branches, so a degenerate corpus cannot exhaust memory.
    """
    start = [(split_word(word, conventions.end_of_word), frequency) for word, frequency in words]
    branches: list[list[Pair]] = []
    pending: list[tuple[list[tuple[Symbols, int]], list[Pair]]] = [(start, [])]
    while pending:
        corpus, merges = pending.pop()
        counts = count_pairs(corpus)
        if len(merges) == num_merges or not counts or max(counts.values()) < conventions.min_count:
            branches.append(merges)
            if len(branches) > limit:
                raise ProblemError("merge branches", len(branches), f"a corpus with at most {limit} valid runs")
            continue
        max_count = max(counts.values())
        for pair in reversed([p for p, c in counts.items() if c == max_count]):
            pending.append(([(merge_symbols(s, pair), f) for s, f in corpus], merges + [pair]))
    return branches


# Encoding

def encode(
    word: str,
    merges: list[Pair],
    conventions: BPEConventions = BPEConventions(),
    known_characters: set[str] | None = None,
) -> list[str]:
    """Encode a new word by applying the learned merge of lowest rank until none applies.

    Merges are pair-based: (a, bc) applies only where the symbols `a` and `bc` are
    adjacent. With conventions.unseen == "unk", a character outside known_characters
    becomes [UNK] (keeping an attached `</w>`); otherwise it stays a token of its own.
    """
    symbols = list(split_word(word, conventions.end_of_word))
    if known_characters is not None and conventions.unseen is UnseenPolicy.UNK:
        symbols = [_mask_unseen(symbol, known_characters) for symbol in symbols]
    rank = {pair: index for index, pair in enumerate(merges)}

    while len(symbols) > 1:
        present = [pair for pair in zip(symbols, symbols[1:]) if pair in rank]
        if not present:
            break
        best = min(present, key=rank.__getitem__)
        symbols = list(merge_symbols(tuple(symbols), best))
    return symbols


def _mask_unseen(symbol: str, known_characters: set[str]) -> str:
    if symbol == END_OF_WORD:
        return symbol
    character = symbol.removesuffix(END_OF_WORD)
    if character in known_characters:
        return symbol
    return UNKNOWN + symbol[len(character):]


def training_characters(words: list[tuple[str, int]]) -> set[str]:
    return {character for word, _ in words for character in word}


def decode(tokens: list[str]) -> str:
    """Join tokens and drop every `</w>`: the inverse of encode when no [UNK] was made."""
    return "".join(tokens).replace(END_OF_WORD, "")


def format_pair(pair: Pair) -> str:
    return f"{pair[0]} {pair[1]}"


def format_corpus(corpus: list[tuple[Symbols, int]]) -> str:
    """Format a segmented corpus the way a worked solution writes it: `lo w </w> (x2)`."""
    parts = []
    for symbols, frequency in corpus:
        text = " ".join(symbols)
        parts.append(text if frequency == 1 else f"{text} (x{frequency})")
    return ", ".join(parts)
