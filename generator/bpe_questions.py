"""BPE question builders: training by hand, and encoding new words with learned merges.

A builder takes the problem from the spec's `fixed` block (a notes example or a past
paper's problem) or draws a random variant, checks it, and draws again when it is
degenerate or breaks the tie setting.
"""

from __future__ import annotations

import logging
from functools import cache

import numpy as np
import yaml

from generator import bpe
from generator.errors import ProblemError
from generator.question import MAX_DRAWS, Part, Question
from mlexam.resources import resource_path

log = logging.getLogger(__name__)


@cache
def word_parts() -> tuple[list[str], list[str]]:
    data = yaml.safe_load(resource_path("question_banks", "word_parts.yaml").read_text(encoding="utf-8"))
    return list(data["stems"]), list(data["endings"])


# BPE training

def trace_to_dict(trace: bpe.BPETrace, encodings: dict[str, list[str]] | None = None) -> dict:
    """Write a training run as the JSON of the key and of `mlexam solve bpe --json`."""
    data = {
        "conventions": trace.conventions.to_dict(),
        "words": [{"word": word, "count": count} for word, count in trace.words],
        "initial_corpus": [" ".join(symbols) for symbols, _ in trace.initial_corpus],
        "initial_vocab": trace.initial_vocab,
        "merges": [bpe.format_pair(pair) for pair in trace.merges],
        "steps": [
            {
                "step": step.number,
                "pair_counts": [[bpe.format_pair(pair), count] for pair, count in step.pair_counts],
                "max_count": step.max_count,
                "tied": [bpe.format_pair(pair) for pair in step.tied],
                "merge": bpe.format_pair(step.merge),
                "new_symbol": step.new_symbol,
                "corpus_after": [" ".join(symbols) for symbols, _ in step.corpus_after],
            }
            for step in trace.steps
        ],
        "stop_reason": trace.stop_reason,
        "vocab_size": {"initial": len(trace.initial_vocab), "final": len(trace.vocab)},
        "segmentation": {word: " ".join(tokens) for word, tokens in trace.segmentation().items()},
    }
    if encodings is not None:
        data["encodings"] = {word: " ".join(tokens) for word, tokens in encodings.items()}
    return data


def bpe_conventions(spec: dict) -> bpe.BPEConventions:
    return bpe.BPEConventions.from_dict(spec.get("conventions", {}))


def draw_words(rng: np.random.Generator, num_words: int, max_count: int) -> list[tuple[str, int]]:
    """Draw words that share stems and endings, with frequencies from 1 to max_count."""
    stems, endings = word_parts()
    chosen_stems = rng.choice(stems, size=2, replace=False)
    chosen_endings = rng.choice(endings, size=4, replace=False)
    candidates = sorted({str(stem) + str(ending) for stem in chosen_stems for ending in chosen_endings})
    picked = rng.choice(candidates, size=min(num_words, len(candidates)), replace=False)
    return [(str(word), int(rng.integers(1, max_count + 1))) for word in picked]


def builds_on_earlier_merge(trace: bpe.BPETrace) -> bool:
    made: set[str] = set()
    for step in trace.steps:
        if step.merge[0] in made or step.merge[1] in made:
            return True
        made.add(step.new_symbol)
    return False


def tie_setting_holds(trace: bpe.BPETrace, ties: str) -> bool:
    has_tie = any(step.is_tie for step in trace.steps)
    return {"avoid": not has_tie, "require": has_tie, "allow": True}[ties]


def build_bpe_train(qid: str, spec: dict, rng: np.random.Generator) -> Question:
    conventions = bpe_conventions(spec)
    fixed = spec.get("fixed")
    if fixed:
        words = bpe.read_corpus(fixed["corpus"]) if isinstance(fixed["corpus"], str) else \
            bpe.read_word_counts([f"{w}:{c}" for w, c in fixed["corpus"].items()])
        num_merges = int(fixed["merges"])
        trace = bpe.train(words, num_merges=num_merges, conventions=conventions)
        source = "fixed"
    else:
        num_merges = int(spec.get("merges", 5))
        ties = spec.get("ties", "avoid")
        for draw in range(MAX_DRAWS):
            words = draw_words(rng, int(spec.get("words", 5)), int(spec.get("max_count", 6)))
            trace = bpe.train(words, num_merges=num_merges, conventions=conventions)
            if (len(trace.steps) == num_merges and tie_setting_holds(trace, ties)
                    and builds_on_earlier_merge(trace)):
                log.debug("%s: bpe_train variant accepted after %d rejected draws", qid, draw)
                break
        else:
            raise ProblemError(f"question {qid}", spec, f"settings that a random corpus can meet within {MAX_DRAWS} draws")
        source = "random"

    branches = bpe.all_branches(words, num_merges, conventions)
    marks = spec.get("marks", {})
    merge_marks = int(marks.get("merges", len(trace.steps)))
    segmentation_marks = int(marks.get("segmentation", 2))
    segmentation = trace.segmentation()
    parts = [
        Part(f"{qid}.merges", "merges", "The merges, in the order you make them", "merge_list", merge_marks,
             'a list of pairs, each written as the two symbols with a space between them, e.g. "x y"',
             [bpe.format_pair(pair) for pair in trace.merges], blank=[""] * len(trace.steps),
             accepted=[[bpe.format_pair(pair) for pair in branch] for branch in branches]),
        Part(f"{qid}.segmentation", "segmentation", "The final segmentation of each training word", "segmentation",
             segmentation_marks, 'for each word, its tokens separated by spaces, e.g. "xy z </w>"',
             {word: " ".join(tokens) for word, tokens in segmentation.items()},
             blank={word: "" for word, _ in words}),
    ]
    problem = {"corpus": [{"word": w, "count": c} for w, c in words], "merges": num_merges}

    # Optional: new words to encode with the learned merges, marked against the student's own merges.
    to_encode = [str(w) for w in (fixed or spec).get("encode", [])]
    encodings = None
    if to_encode:
        known = bpe.training_characters(words)
        encodings = {word: bpe.encode(word, trace.merges, conventions, known) for word in to_encode}
        parts.append(Part(f"{qid}.encodings", "encodings", "The encoding of each new word with your merges",
                          "encoding", int(marks.get("encodings", len(to_encode))),
                          'for each word, its tokens separated by spaces, e.g. "xy z </w>"',
                          {word: " ".join(tokens) for word, tokens in encodings.items()},
                          blank={word: "" for word in to_encode}))
        problem["encode"] = to_encode
    return Question(qid, "bpe_train", spec.get("title", "Train byte-pair encoding by hand"), source,
                    conventions.to_dict(), problem, parts, trace, trace_to_dict(trace, encodings),
                    context={"branches": len(branches)})


# BPE encoding

def build_bpe_encode(qid: str, spec: dict, rng: np.random.Generator) -> Question:
    """Give an ordered merge list and ask for the encoding of new words."""
    conventions = bpe_conventions(spec)
    fixed = spec.get("fixed")
    if fixed:
        words = bpe.read_corpus(fixed["corpus"]) if isinstance(fixed["corpus"], str) else \
            [(w, int(c)) for w, c in fixed["corpus"].items()]
        trace = bpe.train(words, num_merges=int(fixed["merges"]), conventions=conventions)
        new_words = [str(w) for w in fixed["words"]]
        source = "fixed"
    else:
        stems, endings = word_parts()
        num_merges = int(spec.get("merges", 6))
        for draw in range(MAX_DRAWS):
            words = draw_words(rng, int(spec.get("words", 5)), int(spec.get("max_count", 6)))
            trace = bpe.train(words, num_merges=num_merges, conventions=conventions)
            if len(trace.steps) < num_merges:
                continue
            new_words = _draw_new_words(rng, words, trace, conventions, stems, endings, int(spec.get("new_words", 3)))
            if new_words:
                log.debug("%s: bpe_encode variant accepted after %d rejected draws", qid, draw)
                break
        else:
            raise ProblemError(f"question {qid}", spec, f"settings that a random corpus can meet within {MAX_DRAWS} draws")
        source = "random"

    known = bpe.training_characters(trace.words)
    encodings = {word: bpe.encode(word, trace.merges, conventions, known) for word in new_words}
    marks = spec.get("marks", {})
    parts = [Part(f"{qid}.encodings", "encodings", "The encoding of each new word", "encoding",
                  int(marks.get("encodings", len(new_words))),
                  'for each word, its tokens separated by spaces, e.g. "xy z </w>"',
                  {word: " ".join(tokens) for word, tokens in encodings.items()},
                  blank={word: "" for word in new_words})]
    problem = {"merges": [bpe.format_pair(pair) for pair in trace.merges], "words": new_words,
               "training_characters": sorted(known)}
    solution = {"merges": problem["merges"], "encodings": {}}
    steps = {}
    for word in new_words:
        steps[word] = _encoding_steps(word, trace.merges, conventions, known)
        solution["encodings"][word] = {"steps": steps[word], "tokens": " ".join(encodings[word])}
    return Question(qid, "bpe_encode", spec.get("title", "Encode new words with learned merges"), source,
                    conventions.to_dict(), problem, parts, {"steps": steps, "encodings": encodings,
                                                           "merges": trace.merges}, solution)


def _draw_new_words(rng, words, trace, conventions, stems, endings, count) -> list[str]:
    """Draw new words from the corpus's stems and endings that use at least two merges each."""
    seen = {w for w, _ in words}
    corpus_stems = [s for s in stems if any(w.startswith(s) for w in seen)]
    candidates = sorted({s + e for s in corpus_stems for e in endings} - seen)
    rng.shuffle(candidates)
    known = bpe.training_characters(words)
    chosen = []
    for word in candidates:
        tokens = bpe.encode(word, trace.merges, conventions, known)
        if len(tokens) < len(bpe.split_word(word, conventions.end_of_word)) - 1:
            chosen.append(word)
        if len(chosen) == count - 1:
            break
    if len(chosen) < count - 1:
        return []
    # One word with a character that never occurred in training.
    unseen = [c for c in "zqxjvkbfc" if c not in known]
    base = chosen[0]
    chosen.append(base[:-1] + unseen[int(rng.integers(len(unseen)))] if unseen else base)
    return chosen


def _encoding_steps(word, merges, conventions, known) -> list[dict]:
    """Return each merge applied while encoding a word, with the symbols after it."""
    symbols = list(bpe.split_word(word, conventions.end_of_word))
    if conventions.unseen is bpe.UnseenPolicy.UNK:
        symbols = bpe.encode(word, [], conventions, known)
    rank = {pair: index for index, pair in enumerate(merges)}
    steps = [{"merge": None, "rank": None, "symbols": " ".join(symbols)}]
    while True:
        present = [pair for pair in zip(symbols, symbols[1:]) if pair in rank]
        if not present:
            return steps
        best = min(present, key=rank.__getitem__)
        symbols = list(bpe.merge_symbols(tuple(symbols), best))
        steps.append({"merge": bpe.format_pair(best), "rank": rank[best] + 1, "symbols": " ".join(symbols)})
