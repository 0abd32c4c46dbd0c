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

from generator import bpe, bpe_reference
from generator.errors import ProblemError
from generator.question import MAX_DRAWS, Part, Question
from mlexam.resources import resource_path

log = logging.getLogger(__name__)


@cache
def word_families() -> dict[str, list[str]]:
    """Return the bundled families of real words, each sharing a stem and common endings."""
    data = yaml.safe_load(resource_path("question_banks", "word_parts.yaml").read_text(encoding="utf-8"))
    return {str(stem): [str(word) for word in words] for stem, words in data["families"].items()}


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
    """Draw real words from two word families, with frequencies from 1 to max_count.

    Each family gives at least two words, so both stems and the shared endings repeat.
    """
    families = word_families()
    stems = sorted(families)
    chosen = [families[str(stem)] for stem in rng.choice(stems, size=2, replace=False)]
    first_share = min(max(2, num_words // 2), len(chosen[0]), num_words - 2)
    picked = list(rng.choice(chosen[0], size=first_share, replace=False))
    rest = min(num_words - first_share, len(chosen[1]))
    picked += list(rng.choice(chosen[1], size=rest, replace=False))
    return [(str(word), int(rng.integers(1, max_count + 1))) for word in picked]


def build_bpe_train(qid: str, spec: dict, rng: np.random.Generator) -> Question:
    conventions = bpe_conventions(spec)
    fixed = spec.get("fixed")
    if fixed:
        words = bpe.read_corpus(fixed["corpus"]) if isinstance(fixed["corpus"], str) else \
            bpe.read_word_counts([f"{w}:{c}" for w, c in fixed["corpus"].items()])
        if "target_vocab" in fixed:
            trace = bpe.train(words, target_vocab=int(fixed["target_vocab"]), conventions=conventions)
        else:
            trace = bpe.train(words, num_merges=int(fixed["merges"]), conventions=conventions)
        num_merges = len(trace.steps)
        branches = bpe.all_branches(words, num_merges, conventions)
        source = "fixed"
    else:
        words, trace, branches = draw_training_variant(qid, "bpe_train", spec, rng, conventions)
        num_merges = len(trace.steps)
        source = "random"

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
    if (fixed and "target_vocab" in fixed) or (not fixed and spec.get("stop") == "target_vocab"):
        problem["target_vocab"] = len(trace.vocab)

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
        settings = difficulty_settings(spec)
        num_merges = settings["merges"]
        for draw in range(MAX_DRAWS):
            words = draw_words(rng, settings["words"], settings["max_count"])
            trace = bpe.train(words, num_merges=num_merges, conventions=conventions)
            if len(trace.steps) < num_merges:
                continue
            new_words = _draw_new_words(rng, words, trace, conventions, int(spec.get("new_words", 3)))
            disagreement = None
            if new_words:
                disagreement = unseen_problem(new_words, words) or encoding_disagreement(new_words, trace, conventions)
            if disagreement:
                log.debug("%s: bpe_encode draw %d rejected: %s", qid, draw, disagreement)
                continue
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


def _draw_new_words(rng, words, trace, conventions, count) -> list[str]:
    """Draw real words not in the corpus: count - 1 that use at least two merges, then
    one that also has exactly one character never seen in training."""
    seen = {w for w, _ in words}
    known = bpe.training_characters(words)
    families = word_families().values()
    related = sorted({w for family in families if seen & set(family) for w in family} - seen)
    others = sorted({w for family in families for w in family} - seen - set(related))
    rng.shuffle(related)
    rng.shuffle(others)
    # Words from the corpus's own families come first, because they reuse its merges.
    candidates = related + others

    def merges_used(word: str) -> int:
        tokens = bpe.encode(word, trace.merges, conventions, known)
        return len(bpe.split_word(word, conventions.end_of_word)) - len(tokens)

    familiar = [w for w in candidates if set(w) <= known and merges_used(w) >= 2][:count - 1]
    with_unseen = [w for w in candidates if len(set(w) - known) == 1 and merges_used(w) >= 1][:1]
    if len(familiar) < count - 1 or not with_unseen:
        return []
    return familiar + with_unseen


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


# Difficulty

# Each level bounds the hand computation. `words` and `max_count` set the corpus size
# and the frequency spread (1 to max_count). `max_characters` bounds the distinct
# characters of the training words, and `max_pairs` the distinct pairs in any step's
# count table, so that the table fits on a page. `build_on` is the minimum number of
# merges that take a symbol made by an earlier merge. A field set in the spec overrides
# the level's value.
BPE_DIFFICULTY = {
    "easy": {"words": 3, "merges": 3, "max_count": 4, "max_characters": 8, "max_pairs": 14, "build_on": 1},
    "medium": {"words": 5, "merges": 5, "max_count": 6, "max_characters": 11, "max_pairs": 22, "build_on": 2},
    "hard": {"words": 6, "merges": 7, "max_count": 9, "max_characters": 14, "max_pairs": 30, "build_on": 3},
}
DEFAULT_DIFFICULTY = "medium"
# Every option of a valid-run question is a whole merge list, so those lists are shorter.
VALID_RUN_MERGES = {"easy": 3, "medium": 4, "hard": 5}


def difficulty_settings(spec: dict, merges_by_level: dict[str, int] | None = None) -> dict[str, int]:
    """Return the level's bounds with every field the spec sets explicitly in their place."""
    level = spec.get("difficulty", DEFAULT_DIFFICULTY)
    settings = dict(BPE_DIFFICULTY[level])
    if merges_by_level is not None:
        settings["merges"] = merges_by_level[level]
    for name in settings:
        if name in spec:
            settings[name] = int(spec[name])
    return settings


def count_builds_on(merges: list[bpe.Pair]) -> int:
    """Count the merges that take a symbol made by an earlier merge."""
    made: set[str] = set()
    count = 0
    for left, right in merges:
        if left in made or right in made:
            count += 1
        made.add(left + right)
    return count


def variant_problems(words: list[tuple[str, int]], trace: bpe.BPETrace, settings: dict[str, int]) -> list[str]:
    """Return why a drawn training run breaks its difficulty bounds; empty when it keeps them."""
    problems = []
    if len(trace.steps) != settings["merges"]:
        problems.append(f"only {len(trace.steps)} of {settings['merges']} merges possible")
    if len(trace.vocab) != len(trace.initial_vocab) + len(trace.steps):
        problems.append("a merge made a symbol that was already in the vocabulary")
    characters = len(bpe.training_characters(words))
    if characters > settings["max_characters"]:
        problems.append(f"{characters} distinct characters, above {settings['max_characters']}")
    widest = max((len(step.pair_counts) for step in trace.steps), default=0)
    if widest > settings["max_pairs"]:
        problems.append(f"{widest} distinct pairs in one step, above {settings['max_pairs']}")
    building = count_builds_on(trace.merges)
    if building < settings["build_on"]:
        problems.append(f"{building} merges build on earlier merges, below {settings['build_on']}")
    return problems


def tie_problems(trace: bpe.BPETrace, branches: list[list[bpe.Pair]], ties: str) -> list[str]:
    """Check the tie setting on the run: avoid needs exactly one valid run, require a tied step."""
    if ties == "avoid" and len(branches) != 1:
        return [f"{len(branches)} valid runs where ties are avoided"]
    if ties == "require" and not any(step.is_tie for step in trace.steps):
        return ["no tied step where a tie is required"]
    return []


def reference_disagreement(words: list[tuple[str, int]], trace: bpe.BPETrace,
                           branches: list[list[bpe.Pair]]) -> str | None:
    """Recompute the key with the slow reference BPE; return what differs, or None."""
    conventions = trace.conventions
    merges, segmentation, had_tie = bpe_reference.train(
        words, len(trace.steps), conventions.end_of_word.value, conventions.tie_rule.value, conventions.min_count)
    if merges != trace.merges:
        return f"reference merges {merges} differ from {trace.merges}"
    if segmentation != trace.segmentation():
        return "reference segmentation differs"
    if had_tie != any(step.is_tie for step in trace.steps):
        return "reference tie detection differs"
    runs = bpe_reference.valid_runs(words, len(trace.steps), conventions.end_of_word.value, conventions.min_count)
    if sorted(runs) != sorted(branches):
        return f"reference finds {len(runs)} valid runs, all_branches {len(branches)}"
    return None


def encoding_disagreement(new_words: list[str], trace: bpe.BPETrace, conventions: bpe.BPEConventions) -> str | None:
    """Encode every new word with the reference BPE; return the first word whose tokens differ."""
    known = bpe.training_characters(trace.words)
    for word in new_words:
        tokens = bpe.encode(word, trace.merges, conventions, known)
        expected = bpe_reference.encode(word, trace.merges, conventions.end_of_word.value, known, conventions.unseen.value)
        if tokens != expected:
            return f"{word}: reference tokens {expected} differ from {tokens}"
    return None


# Letters of the syllable words that a tie-free corpus is drawn from. Words built from
# stems and endings always tie (the pairs inside a stem occur together), so a corpus
# that must have a unique maximum at every step is drawn from consonant-vowel words
# over a small alphabet, where pairs recur in different words.
CONSONANTS = "bdgklmnprst"
VOWELS = "aeiou"
SYLLABLE_ALPHABET = {"easy": 4, "medium": 4, "hard": 5}
# A random corpus whose ties allow more valid runs than this is drawn again, so the key
# can list every run and a student is not lost among near-identical branches.
MAX_TIE_BRANCHES = 24
# Frequency vectors tried for each drawn set of words before another set is drawn.
FREQUENCY_DRAWS = 30


def draw_syllable_words(rng: np.random.Generator, num_words: int, alphabet: int) -> list[str]:
    """Draw distinct words of 2 to 5 letters that alternate consonants and vowels from a small alphabet."""
    consonants = [str(c) for c in rng.choice(list(CONSONANTS), size=alphabet - 2, replace=False)]
    vowels = [str(v) for v in rng.choice(list(VOWELS), size=2, replace=False)]
    words: list[str] = []
    while len(words) < num_words:
        length = int(rng.integers(2, 6))
        letters = [str(rng.choice(consonants if i % 2 == 0 else vowels)) for i in range(length)]
        word = "".join(letters)
        if word not in words:
            words.append(word)
    return words


def unseen_problem(new_words: list[str], words: list[tuple[str, int]]) -> str | None:
    """Require every new word but the last to use training characters only, and the last exactly one unseen one."""
    known = bpe.training_characters(words)
    unseen_counts = [sum(character not in known for character in word) for word in new_words]
    if any(unseen_counts[:-1]) or unseen_counts[-1] != 1:
        return f"unseen characters per new word {unseen_counts}, expected none but one in the last word"
    return None


def draw_training_variant(qid: str, qtype: str, spec: dict, rng: np.random.Generator,
                          conventions: bpe.BPEConventions, settings: dict[str, int] | None = None):
    """Draw a corpus whose run keeps the difficulty bounds and the tie setting, checked by the reference.

    Returns (words, trace, branches). Each rejected draw is logged at debug level with its reason.
    """
    settings = settings or difficulty_settings(spec)
    ties = spec.get("ties", "avoid")
    level = spec.get("difficulty", DEFAULT_DIFFICULTY)
    for draw in range(MAX_DRAWS):
        if ties == "avoid":
            vocabulary = draw_syllable_words(rng, settings["words"], SYLLABLE_ALPHABET[level])
        else:
            vocabulary = [word for word, _ in draw_words(rng, settings["words"], settings["max_count"])]
        for frequencies in range(FREQUENCY_DRAWS):
            words = [(word, int(rng.integers(1, settings["max_count"] + 1))) for word in vocabulary]
            accepted = _check_training_variant(words, settings, ties, conventions)
            if isinstance(accepted, str):
                log.debug("%s: %s draw %d.%d rejected: %s", qid, qtype, draw, frequencies, accepted)
                continue
            log.debug("%s: %s variant accepted at draw %d.%d", qid, qtype, draw, frequencies)
            return accepted
    raise ProblemError(f"question {qid}", spec, f"settings that a random corpus can meet within {MAX_DRAWS} draws")


def _check_training_variant(words, settings, ties, conventions):
    """Return (words, trace, branches) for an acceptable corpus, or the reason it is rejected."""
    trace = bpe.train(words, num_merges=settings["merges"], conventions=conventions)
    problems = variant_problems(words, trace, settings)
    if ties == "avoid" and any(step.is_tie for step in trace.steps):
        problems.append("a tied step where ties are avoided")
    if problems:
        return "; ".join(problems)
    try:
        # The search stops once it finds more runs than a key may list, since such a corpus is rejected anyway.
        branches = bpe.all_branches(words, len(trace.steps), conventions, limit=MAX_TIE_BRANCHES)
    except ProblemError:
        return f"more than {MAX_TIE_BRANCHES} valid runs"
    problems = tie_problems(trace, branches, ties)
    if problems:
        return "; ".join(problems)
    # The slow reference checks only a corpus that passed every other test: most draws are
    # rejected, and checking each of them took about a quarter of the time to build the practice paper.
    return reference_disagreement(words, trace, branches) or (words, trace, branches)


def fixed_words(fixed: dict) -> list[tuple[str, int]]:
    corpus = fixed["corpus"]
    if isinstance(corpus, str):
        return bpe.read_corpus(corpus)
    return bpe.read_word_counts([f"{word}:{count}" for word, count in corpus.items()])


# BPE vocabulary size

VOCAB_FORM = "a whole number, e.g. 17"


def build_bpe_vocab(qid: str, spec: dict, rng: np.random.Generator) -> Question:
    """Ask for |V| at the start, |V| after n merges, and the merges needed to reach a target size."""
    conventions = bpe_conventions(spec)
    fixed = spec.get("fixed")
    if fixed:
        words = fixed_words(fixed)
        trace = bpe.train(words, num_merges=int(fixed["merges"]), conventions=conventions)
        target = int(fixed["target_vocab"])
        source = "fixed"
    else:
        settings = difficulty_settings(spec)
        for draw in range(MAX_DRAWS):
            words, trace, _ = draw_training_variant(qid, "bpe_vocab", spec, rng, conventions, settings)
            target = len(trace.vocab) + int(rng.integers(1, 4))
            reached = bpe.train(words, target_vocab=target, conventions=conventions)
            if len(reached.vocab) == target:
                break
            log.debug("%s: bpe_vocab draw %d rejected: the target %d cannot be reached", qid, draw, target)
        else:
            raise ProblemError(f"question {qid}", spec, f"settings that a random corpus can meet within {MAX_DRAWS} draws")
        source = "random"

    reached = bpe.train(words, target_vocab=target, conventions=conventions)
    if len(reached.vocab) != target:
        raise ProblemError(f"question {qid} target_vocab", target,
                           f"a size this corpus can reach; it stops at {len(reached.vocab)}")
    initial = len(trace.initial_vocab)
    after = len(trace.vocab)
    needed = len(reached.steps)
    reference_after = bpe_reference.vocabulary_size(words, trace.merges, conventions.end_of_word.value)
    if reference_after != after:
        raise ProblemError(f"question {qid}", after, f"the reference vocabulary size {reference_after}")

    marks = spec.get("marks", {})
    parts = [
        Part(f"{qid}.initial", "initial", "The size of the initial vocabulary", "integer",
             int(marks.get("initial", 1)), VOCAB_FORM, initial),
        Part(f"{qid}.after_merges", "after_merges", f"The vocabulary size after {len(trace.steps)} merges",
             "integer", int(marks.get("after_merges", 1)), VOCAB_FORM, after),
        Part(f"{qid}.merges_needed", "merges_needed", f"The number of merges needed to reach {target} symbols",
             "integer", int(marks.get("merges_needed", 1)), VOCAB_FORM, needed),
    ]
    problem = {"corpus": [{"word": w, "count": c} for w, c in words], "merges": len(trace.steps),
               "target_vocab": target}
    solution = {"initial_vocab": trace.initial_vocab, "merges": [bpe.format_pair(p) for p in trace.merges],
                "vocab_after": trace.vocab, "initial": initial, "after_merges": after, "merges_needed": needed}
    return Question(qid, "bpe_vocab", spec.get("title", "Vocabulary size in byte-pair encoding"), source,
                    conventions.to_dict(), problem, parts, trace, solution)


# Which merge list is a valid run

CHOICE_LETTERS = "ABCDE"
CHOICE_FORM = 'one or more option letters, e.g. "B" or "A, D"'


def _greedy_run(corpus: list[tuple[bpe.Symbols, int]], num_merges: int, rule: bpe.TieRule) -> list[bpe.Pair]:
    merges = []
    while len(merges) < num_merges:
        counts = bpe.count_pairs(corpus)
        if not counts:
            break
        best = max(counts.values())
        merge = bpe.choose_merge([pair for pair, count in counts.items() if count == best], rule)
        merges.append(merge)
        corpus = [(bpe.merge_symbols(symbols, merge), frequency) for symbols, frequency in corpus]
    return merges


def _runner_up_run(words, branch: list[bpe.Pair], conventions: bpe.BPEConventions,
                   rng: np.random.Generator) -> list[bpe.Pair]:
    """Follow a valid run, but at one step merge a pair that is not the most frequent, then continue greedily."""
    corpus = [(bpe.split_word(w, conventions.end_of_word), f) for w, f in words]
    step = int(rng.integers(len(branch)))
    for merge in branch[:step]:
        corpus = [(bpe.merge_symbols(s, merge), f) for s, f in corpus]
    counts = bpe.count_pairs(corpus)
    best = max(counts.values())
    lower = [pair for pair, count in counts.items() if count < best]
    if not lower:
        return []
    runner_count = max(counts[pair] for pair in lower)
    wrong = next(pair for pair in lower if counts[pair] == runner_count)
    corpus = [(bpe.merge_symbols(s, wrong), f) for s, f in corpus]
    return branch[:step] + [wrong] + _greedy_run(corpus, len(branch) - step - 1, conventions.tie_rule)


def wrong_runs(words: list[tuple[str, int]], num_merges: int, conventions: bpe.BPEConventions,
               branches: list[list[bpe.Pair]], rng: np.random.Generator) -> list[tuple[str, list[bpe.Pair]]]:
    """Build merge lists that typical mistakes produce, each named by its mistake."""
    split = [(bpe.split_word(w, conventions.end_of_word), f) for w, f in words]
    stream = tuple(symbol for symbols, frequency in split for _ in range(frequency) for symbol in symbols)
    runs = [
        ("pairs counted across word boundaries", _greedy_run([(stream, 1)], num_merges, conventions.tie_rule)),
        ("word frequencies ignored", _greedy_run([(s, 1) for s, _ in split], num_merges, conventions.tie_rule)),
    ]
    if conventions.end_of_word is not bpe.EndOfWord.NONE:
        unmarked = [(bpe.split_word(w, bpe.EndOfWord.NONE), f) for w, f in words]
        runs.append(("end-of-word marker forgotten", _greedy_run(unmarked, num_merges, conventions.tie_rule)))
    if len(branches) > 1:
        first, second = (branches[i] for i in rng.choice(len(branches), size=2, replace=False))
        split_at = next(i for i, (a, b) in enumerate(zip(first, second)) if a != b)
        runs.append(("merges from two different tie branches", first[:split_at + 1] + second[split_at + 1:]))
    runs.append(("a pair merged that is not the most frequent", _runner_up_run(words, branches[0], conventions, rng)))
    return runs


def first_invalid_step(words, merges: list[bpe.Pair], conventions: bpe.BPEConventions) -> dict | None:
    """Return the first step whose merge is not a pair tied for the maximum, with the counts there."""
    corpus = [(bpe.split_word(w, conventions.end_of_word), f) for w, f in words]
    for number, merge in enumerate(merges, start=1):
        counts = bpe.count_pairs(corpus)
        best = max(counts.values(), default=0)
        tied = [pair for pair, count in counts.items() if count == best]
        if merge not in tied:
            return {"step": number, "merge": bpe.format_pair(merge), "count": counts.get(merge, 0),
                    "max_count": best, "tied": [bpe.format_pair(pair) for pair in tied]}
        corpus = [(bpe.merge_symbols(s, merge), f) for s, f in corpus]
    return None


def build_bpe_valid_run(qid: str, spec: dict, rng: np.random.Generator) -> Question:
    """Multiple choice: which of these merge lists could a correct BPE run produce?"""
    conventions = bpe_conventions(spec)
    settings = difficulty_settings(spec, VALID_RUN_MERGES)
    num_options = int(spec.get("options", 4))
    fixed = spec.get("fixed")
    for draw in range(MAX_DRAWS):
        if fixed:
            words = fixed_words(fixed)
            trace = bpe.train(words, num_merges=int(fixed["merges"]), conventions=conventions)
            branches = bpe.all_branches(words, len(trace.steps), conventions)
        else:
            words, trace, branches = draw_training_variant(qid, "bpe_valid_run", spec, rng, conventions, settings)
        options = _choose_options(words, trace, branches, conventions, num_options, rng)
        problem = _options_problem(words, options, conventions, num_options)
        if problem is None:
            break
        log.debug("%s: bpe_valid_run draw %d rejected: %s", qid, draw, problem)
        if fixed:
            raise ProblemError(f"question {qid} fixed corpus", fixed["corpus"],
                               f"a corpus with {num_options - 1} different wrong runs: {problem}")
    else:
        raise ProblemError(f"question {qid}", spec, f"settings that a random corpus can meet within {MAX_DRAWS} draws")

    correct = ", ".join(option["letter"] for option in options if option["valid"])
    marks = spec.get("marks", {})
    parts = [Part(f"{qid}.choice", "choice", "The letter of every valid run", "choice",
                  int(marks.get("choice", 2)), CHOICE_FORM, correct)]
    problem_dict = {"corpus": [{"word": w, "count": c} for w, c in words], "merges": len(trace.steps),
                    "options": [{"letter": o["letter"], "merges": o["merges"]} for o in options]}
    solution = {"branches": len(branches), "correct": correct, "options": options}
    return Question(qid, "bpe_valid_run", spec.get("title", "Which merge list is a valid BPE run?"),
                    "fixed" if fixed else "random", conventions.to_dict(), problem_dict, parts, trace, solution,
                    context={"branches": len(branches)})


def _choose_options(words, trace, branches, conventions, num_options, rng) -> list[dict]:
    """Pick one valid run (two when ties give more than one, at random) and fill up with wrong runs."""
    valid_count = 1 if len(branches) == 1 else int(rng.integers(1, 3))
    picked = [branches[i] for i in rng.choice(len(branches), size=valid_count, replace=False)]
    options = [{"merges": run, "valid": True, "mistake": None} for run in picked]
    valid_set = {tuple(run) for run in branches}
    seen = set(valid_set)
    wrong = wrong_runs(words, len(trace.steps), conventions, branches, rng)
    for index in rng.permutation(len(wrong)):
        mistake, run = wrong[index]
        if len(run) != len(trace.steps) or tuple(run) in seen or len(options) == num_options:
            continue
        seen.add(tuple(run))
        options.append({"merges": run, "valid": False, "mistake": mistake})
    order = rng.permutation(len(options))
    shuffled = []
    for letter, index in zip(CHOICE_LETTERS, order):
        option = options[index]
        shuffled.append({"letter": letter, "merges": [bpe.format_pair(p) for p in option["merges"]],
                         "valid": option["valid"], "mistake": option["mistake"],
                         "first_invalid": first_invalid_step(words, option["merges"], conventions)})
    return shuffled


def _options_problem(words, options: list[dict], conventions: bpe.BPEConventions, num_options: int) -> str | None:
    """Check the options with the reference BPE: enough of them, and each one's validity as the key says."""
    if len(options) < num_options:
        return f"only {len(options)} of {num_options} different options"
    for option in options:
        merges = [tuple(text.split(" ")) for text in option["merges"]]
        if bpe_reference.is_valid_run(words, merges, conventions.end_of_word.value,
                                      conventions.min_count) != option["valid"]:
            return f"the reference BPE disagrees on option {option['letter']}"
    return None
