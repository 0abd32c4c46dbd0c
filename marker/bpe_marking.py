"""Marking of BPE parts: the merge list (or a full trace), the segmentation and the encodings.

Each step of the student's merge list is judged on the student's own corpus: the
starting corpus with the student's earlier merges applied, wrong ones included. A
step is right when its pair is among the pairs tied for the maximum count there. So
every tie branch earns full marks, and a list that mixes two branches loses the step
where it leaves the branch it was on. With merges [a a, a b] on `aaabdaaabac`, the
corpus is `aa ab d aa ab a c`, so a third merge `aaa b` is wrong (that pair never
occurs) while `aa ab` is right.

The segmentation and the encodings are marked against the student's own merge list
when every step of it is right, and against the key's list otherwise.

A trace may be given instead of, or besides, the merge list. It is a list with one
entry per step, each a mapping with `merge` ("l o"), `counts` ({"l o": 2, "o w": 2})
and `corpus` (a string of the symbols of every word, "lo w </w> lo w i s h </w>", or
a list with one string per word). A step earns its mark when its merge is right and
every count and the corpus it gives are right. `counts` must list every pair tied
for the maximum but may leave out pairs with lower counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

from generator import bpe
from generator.bpe import UNKNOWN, BPEConventions, Pair, Symbols
from marker import mistakes
from marker.report import PartResult, Verdict

Corpus = list[tuple[Symbols, int]]

PAIR_FORM = 'the two symbols of the pair with a space between them, e.g. "l o"'
TOKENS_FORM = 'the tokens separated by spaces, e.g. "low ish </w>"'
TRACE_FORM = ('a list of steps, each with merge ("l o"), counts ({"l o": 2}) and corpus '
              '("lo w </w> lo w i s h </w>" or one string per word)')

# A trailing "(x2)" after a word of a written corpus gives its frequency, as the key writes it.
_FREQUENCY_SUFFIX = re.compile(r"\s*\(x\d+\)\s*$")


class BPEAnswerError(ValueError):
    """A BPE answer that cannot be read; the message names the expected form."""


# Reading answers

def is_blank(raw: object) -> bool:
    if raw is None:
        return True
    if isinstance(raw, str):
        return not raw.strip()
    if isinstance(raw, (list, tuple)):
        return all(is_blank(item) for item in raw)
    if isinstance(raw, dict):
        return all(is_blank(item) for item in raw.values())
    return False


def read_pair(raw: object, where: str) -> Pair | None:
    """Read "l o" or ["l", "o"] as a pair; None for a blank entry."""
    if is_blank(raw):
        return None
    if isinstance(raw, (list, tuple)) and len(raw) == 2 and all(isinstance(s, str) for s in raw):
        symbols = [s.strip() for s in raw]
    elif isinstance(raw, str):
        symbols = raw.split()
    else:
        raise BPEAnswerError(f"{where}: found {raw!r}; expected {PAIR_FORM}")
    if len(symbols) != 2 or not all(symbols):
        raise BPEAnswerError(f"{where}: found {raw!r}; expected {PAIR_FORM}")
    return symbols[0], symbols[1]


def read_tokens(raw: object, separators: str, where: str) -> list[str] | None:
    """Read "low ish </w>" or ["low", "ish", "</w>"]; None for a blank answer.

    separators contains the characters besides whitespace that also split tokens (",", "+")
    when the corpus never uses them, so "low, ish, </w>" and "low + ish + </w>" read too.
    """
    if is_blank(raw):
        return None
    if isinstance(raw, (list, tuple)) and all(isinstance(t, str) for t in raw):
        tokens = [t.strip() for t in raw]
        if not all(tokens):
            raise BPEAnswerError(f"{where}: found an empty token in {raw!r}; expected {TOKENS_FORM}")
        return tokens
    if not isinstance(raw, str):
        raise BPEAnswerError(f"{where}: found {raw!r}; expected {TOKENS_FORM}")
    # The token [UNK] is set aside first, so its brackets are never read as list brackets.
    text = raw.strip().replace(UNKNOWN, _UNKNOWN_PLACEHOLDER)
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    pattern = r"\s+" if not separators else r"[\s" + re.escape(separators) + r"]+"
    return [token.replace(_UNKNOWN_PLACEHOLDER, UNKNOWN) for token in re.split(pattern, text) if token]


_UNKNOWN_PLACEHOLDER = "\x00"


def token_separators(alphabet: set[str]) -> str:
    return "".join(c for c in ",+[" if c not in alphabet)


def read_word_answers(raw: object, words: list[str], where: str) -> dict[str, object]:
    if is_blank(raw):
        return {}
    if not isinstance(raw, dict):
        raise BPEAnswerError(f"{where}: found {type(raw).__name__}; expected one entry per word "
                             f"({', '.join(words)}), each {TOKENS_FORM}")
    return {str(word).strip(): value for word, value in raw.items()}


# The problem, as the marker needs it

@dataclass
class TrainingProblem:
    words: list[tuple[str, int]]
    conventions: BPEConventions
    start: Corpus
    key_merges: list[Pair]
    alphabet: set[str] = field(default_factory=set)


def training_problem(state) -> TrainingProblem:
    cached = state.cache.get("training_problem")
    if cached is None:
        question = state.question
        conventions = BPEConventions.from_dict(question.get("conventions", {}))
        words = [(entry["word"], int(entry["count"])) for entry in question["problem"]["corpus"]]
        start = [(bpe.split_word(word, conventions.end_of_word), count) for word, count in words]
        merges_part = next(p for p in question["parts"] if p["kind"] == "merge_list")
        key_merges = [tuple(text.split()) for text in merges_part["expected"]]
        alphabet = {c for word, _ in words for c in word}
        cached = TrainingProblem(words, conventions, start, key_merges, alphabet)
        state.cache["training_problem"] = cached
    return cached


# Steps beyond those asked that a merge list or trace may give; they are not marked.
# A longer list is invalid, so a pasted list of thousands of pairs costs no time.
MAX_EXTRA_STEPS = 20

# Results kept per distinct merge list, since most students of a paper give the same few.
MAX_CACHED_LISTS = 256


def cached(state, table: str, merges: tuple, compute):
    """Return compute() for this merge list, from the question's cache when it was computed before.

    Cached results are shared between submissions, so callers must not change them.
    """
    entries = state.cache.setdefault(table, {})
    if merges not in entries:
        if len(entries) >= MAX_CACHED_LISTS:
            entries.pop(next(iter(entries)))
        entries[merges] = compute()
    return entries[merges]


def apply_merges(corpus: Corpus, merges: list[Pair]) -> Corpus:
    for pair in merges:
        corpus = [(bpe.merge_symbols(symbols, pair), count) for symbols, count in corpus]
    return corpus


# The merge list

@dataclass
class StepResult:
    number: int
    merge: Pair | None
    right: bool  # the step earns its mark: the merge and any written working are right
    note: str = ""
    mistake: str | None = None
    tied: list[Pair] = field(default_factory=list)
    merge_right: bool = False  # the merge alone is right, whatever the written working


def mark_merge_list(part: dict, state) -> PartResult:
    problem = training_problem(state)
    maximum = Fraction(part["marks"])
    num_steps = len(part["expected"])
    expected = part["expected"]
    try:
        for name in ("merges", "trace"):
            _check_length(state.answers.get(name), num_steps, f"{part['id']} ({name})")
        merges = _read_merge_list(state.answers.get("merges"), part["id"])
        trace = _read_trace(state.answers.get("trace"), part["id"], problem)
    except BPEAnswerError as error:
        return PartResult(part["id"], Verdict.INVALID, Fraction(0), maximum, expected, str(error))
    if trace is None and all(m is None for m in merges):
        return PartResult(part["id"], Verdict.MISSING, Fraction(0), maximum, expected, "No merges given.")

    if trace is None:
        steps = cached(state, "merge_steps", tuple(merges), lambda: _judge_steps(problem, merges, None, num_steps))
    else:
        steps = _judge_steps(problem, merges, trace, num_steps)
    per_step = maximum / num_steps if num_steps else Fraction(0)
    marks = per_step * sum(step.right for step in steps)
    student_merges = [step.merge for step in steps]
    valid_run = all(step.merge_right for step in steps)
    if valid_run:
        state.shared["merges"] = [m for m in student_merges if m is not None]

    notes = [step.note for step in steps if step.note]
    mistake = next((step.mistake for step in steps if step.mistake), None)
    working = {"steps": [{"step": s.number, "merge": bpe.format_pair(s.merge) if s.merge else "",
                          "right": s.right, "tied": [bpe.format_pair(p) for p in s.tied]} for s in steps]}
    if not all(step.right for step in steps):
        return PartResult(part["id"], Verdict.WRONG, marks, maximum, expected, " ".join(notes), mistake, working)
    if [bpe.format_pair(m) for m in student_merges if m is not None] == expected:
        return PartResult(part["id"], Verdict.CORRECT, marks, maximum, expected, "All merges right.", None, working)
    branch_point = next(s for s in steps if s.merge != _key_merge(problem, s.number))
    key_merge = _key_merge(problem, branch_point.number)
    feedback = (f"All merges right. At step {branch_point.number} you merged {bpe.format_pair(branch_point.merge)} "
                f"where the key merges {bpe.format_pair(key_merge) if key_merge else 'nothing'}; both are tied for "
                "the maximum count, so yours is a valid branch, and later parts are marked against your merges.")
    return PartResult(part["id"], Verdict.ACCEPTED_TIE_BRANCH, marks, maximum,
                      [bpe.format_pair(m) for m in student_merges if m is not None], feedback, None, working)


def _check_length(raw: object, num_steps: int, where: str) -> None:
    """Reject a list far longer than the steps asked; a few extra merges are allowed and not marked."""
    if isinstance(raw, (list, tuple)) and len(raw) > num_steps + MAX_EXTRA_STEPS:
        raise BPEAnswerError(f"{where}: found {len(raw)} steps; expected one per merge, "
                             f"{num_steps} in all")


def _key_merge(problem: TrainingProblem, number: int) -> Pair | None:
    return problem.key_merges[number - 1] if number <= len(problem.key_merges) else None


def _read_merge_list(raw: object, part_id: str) -> list[Pair | None]:
    if is_blank(raw):
        return []
    if isinstance(raw, str):
        # One string with the merges separated by commas, semicolons or new lines.
        raw = [item for item in re.split(r"[,;\n]", raw) if item.strip()]
    if not isinstance(raw, (list, tuple)):
        raise BPEAnswerError(f"{part_id}: found {type(raw).__name__}; expected a list of merges, each {PAIR_FORM}")
    return [read_pair(item, f"{part_id}, merge {number}") for number, item in enumerate(raw, start=1)]


@dataclass
class TraceStep:
    merge: Pair | None
    counts: dict[Pair, int] | None
    corpus: list[Symbols] | None  # one entry per written word, or one entry for a single string


def _read_trace(raw: object, part_id: str, problem: TrainingProblem) -> list[TraceStep] | None:
    if is_blank(raw):
        return None
    where = f"{part_id} (trace)"
    if not isinstance(raw, (list, tuple)):
        raise BPEAnswerError(f"{where}: found {type(raw).__name__}; expected {TRACE_FORM}")
    steps = []
    for number, entry in enumerate(raw, start=1):
        at = f"{where}, step {number}"
        if not isinstance(entry, dict):
            raise BPEAnswerError(f"{at}: found {entry!r}; expected a mapping with merge, counts and corpus")
        unknown = set(entry) - {"merge", "counts", "corpus"}
        if unknown:
            raise BPEAnswerError(f"{at}: unknown field {sorted(unknown)[0]!r}; the fields are merge, counts and corpus")
        counts = None
        if not is_blank(entry.get("counts")):
            if not isinstance(entry["counts"], dict):
                raise BPEAnswerError(f"{at}, counts: found {entry['counts']!r}; expected a mapping such as {{\"l o\": 2}}")
            counts = {}
            for pair_text, count in entry["counts"].items():
                pair = read_pair(pair_text, f"{at}, counts")
                if isinstance(count, bool) or not isinstance(count, int) and not (
                        isinstance(count, str) and count.strip().isdigit()):
                    raise BPEAnswerError(f"{at}, count of {pair_text!r}: found {count!r}; expected a whole number")
                counts[pair] = int(count)
        corpus = None
        if not is_blank(entry.get("corpus")):
            corpus = _read_written_corpus(entry["corpus"], at)
        steps.append(TraceStep(read_pair(entry.get("merge"), f"{at}, merge"), counts, corpus))
    return steps


def _read_written_corpus(raw: object, where: str) -> list[Symbols]:
    if isinstance(raw, str):
        return [tuple(raw.split())]
    if isinstance(raw, (list, tuple)) and all(isinstance(word, str) for word in raw):
        return [tuple(_FREQUENCY_SUFFIX.sub("", word).split()) for word in raw]
    raise BPEAnswerError(f"{where}, corpus: found {raw!r}; expected a string of symbols or one string per word")


def _judge_steps(problem: TrainingProblem, merges: list[Pair | None], trace: list[TraceStep] | None,
                 num_steps: int) -> list[StepResult]:
    corpus = problem.start
    results = []
    for index in range(num_steps):
        number = index + 1
        listed = merges[index] if index < len(merges) else None
        written = trace[index] if trace is not None and index < len(trace) else None
        merge = written.merge if written is not None and written.merge is not None else listed
        counts = bpe.count_pairs(corpus)
        max_count = max(counts.values(), default=0)
        stops = not counts or max_count < problem.conventions.min_count
        tied = [] if stops else [pair for pair, count in counts.items() if count == max_count]
        result = StepResult(number, merge, right=False, tied=tied)

        # The merge itself, judged on the student's own corpus before this step.
        if merge is None:
            result.right = stops
            result.note = "" if stops else f"Step {number}: no merge given."
        elif stops:
            result.note = f"Step {number}: training stops before this step, so no merge is made."
        elif merge not in tied:
            result.note = (f"Step {number}: {bpe.format_pair(merge)} occurs {_times(counts.get(merge, 0))}, but the "
                           f"maximum count on your corpus is {max_count} "
                           f"({', '.join(bpe.format_pair(p) for p in tied)}).")
            result.mistake = mistakes.bpe_step_mistake(corpus, merge, problem.conventions)
            if result.mistake:
                result.note += f" This matches {mistakes.describe(result.mistake)}."
        else:
            result.right = True
        if listed is not None and written is not None and written.merge is not None and listed != written.merge:
            result.right = False
            result.note += (f" Step {number}: your merge list says {bpe.format_pair(listed)} but your trace says "
                            f"{bpe.format_pair(written.merge)}.")
        result.merge_right = result.right

        # The written working of a trace step: counts, then the corpus after the merge.
        after = corpus if merge is None else [(bpe.merge_symbols(s, merge), c) for s, c in corpus]
        if written is not None:
            problems = _trace_step_problems(written, counts, tied, after)
            if problems:
                result.right = False
                result.note = (result.note + " " if result.note else "") + f"Step {number}: " + " ".join(problems)
        results.append(result)
        corpus = after
    if results and ((trace is not None and len(trace) > num_steps) or len(merges) > num_steps):
        results[-1].note += f" Only the first {num_steps} merges are marked."
    return results


def _trace_step_problems(written: TraceStep, counts: dict[Pair, int], tied: list[Pair], after: Corpus) -> list[str]:
    problems = []
    if written.counts is not None:
        wrong = [(pair, count) for pair, count in written.counts.items() if counts.get(pair, 0) != count]
        for pair, count in wrong:
            problems.append(f"The count of {bpe.format_pair(pair)} is {counts.get(pair, 0)}, not {count}.")
        left_out = [pair for pair in tied if pair not in written.counts]
        if left_out:
            problems.append("The counts leave out " + ", ".join(bpe.format_pair(p) for p in left_out)
                            + f", tied for the maximum count {max(counts.values())}.")
    if written.corpus is not None and not _corpus_matches(written.corpus, after):
        problems.append("The corpus after the merge is " + bpe.format_corpus(after) + ".")
    return problems


def _corpus_matches(written: list[Symbols], corpus: Corpus) -> bool:
    """Accept one string per distinct word or per occurrence, in any order, or all symbols in one string.

    One string is split into words after each symbol that ends with </w>; without an
    end-of-word marker it must list the words' symbols in the corpus order.
    """
    distinct = [symbols for symbols, _ in corpus]
    repeated = [symbols for symbols, count in corpus for _ in range(count)]
    words = written
    if len(written) == 1 and any(s.endswith(bpe.END_OF_WORD) for s in written[0]):
        words = _split_at_end_marker(written[0])
    if sorted(words) in (sorted(distinct), sorted(repeated)):
        return True
    flat = tuple(symbol for symbols in written for symbol in symbols)
    return flat in (tuple(s for w in distinct for s in w), tuple(s for w in repeated for s in w))


def _split_at_end_marker(symbols: Symbols) -> list[Symbols]:
    words, current = [], []
    for symbol in symbols:
        current.append(symbol)
        if symbol.endswith(bpe.END_OF_WORD):
            words.append(tuple(current))
            current = []
    if current:
        words.append(tuple(current))
    return words


# The segmentation and the encodings

def reference_merges(state, problem: TrainingProblem) -> tuple[list[Pair], bool]:
    """Return the merges later parts are marked against, and whether they are the student's branch."""
    own = state.shared.get("merges")
    if own is not None and own != problem.key_merges:
        return own, True
    return problem.key_merges, False


def mark_segmentation(part: dict, state) -> PartResult:
    problem = training_problem(state)
    merges, own_branch = reference_merges(state, problem)
    def segment() -> dict[str, list[str]]:
        final = apply_merges(problem.start, merges)
        return {word: list(symbols) for (word, _), (symbols, _) in zip(problem.words, final, strict=True)}

    reference = cached(state, "segmentations", tuple(merges), segment)

    def mistaken(word: str) -> dict[str, list[str]]:
        return cached(state, "segmentation_mistakes", (tuple(merges), word),
                      lambda: mistakes.segmentation_mistakes(word, problem.words, merges, problem.conventions))

    return _mark_per_word(part, state.answers.get("segmentation"), reference, own_branch,
                          token_separators(problem.alphabet), mistaken)


def mark_encodings(part: dict, state) -> PartResult:
    question = state.question
    conventions = BPEConventions.from_dict(question.get("conventions", {}))
    problem_data = question["problem"]
    if question["type"] == "bpe_encode" or "corpus" not in problem_data:
        merges = [tuple(text.split()) for text in problem_data["merges"]]
        known = set(problem_data.get("training_characters", []))
        own_branch = False
        start = None
    else:
        problem = training_problem(state)
        merges, own_branch = reference_merges(state, problem)
        known = problem.alphabet
        start = problem.start
    words = list(part["expected"])
    reference = cached(state, "encodings", tuple(merges),
                       lambda: {word: bpe.encode(word, merges, conventions, known or None) for word in words})
    alphabet = known | {c for word in words for c in word}

    def mistaken(word: str) -> dict[str, list[str]]:
        def compute() -> dict[str, list[str]]:
            merge_counts = _merge_counts(start, merges) if start is not None else None
            return mistakes.encoding_mistakes(word, merges, conventions, known or None, merge_counts)

        return cached(state, "encoding_mistakes", (tuple(merges), word), compute)

    return _mark_per_word(part, state.answers.get("encodings"), reference, own_branch,
                          token_separators(alphabet), mistaken)


def _merge_counts(start: Corpus, merges: list[Pair]) -> list[int]:
    """Return the count each merge had when it was made: the frequency order of the merges."""
    corpus, result = start, []
    for pair in merges:
        result.append(bpe.count_pairs(corpus).get(pair, 0))
        corpus = [(bpe.merge_symbols(s, pair), c) for s, c in corpus]
    return result


def _mark_per_word(part: dict, raw: object, reference: dict[str, list[str]], own_branch: bool,
                   separators: str, mistaken) -> PartResult:
    maximum = Fraction(part["marks"])
    expected = {word: " ".join(tokens) for word, tokens in reference.items()}
    try:
        given = read_word_answers(raw, list(reference), part["id"])
        tokens_by_word = {word: read_tokens(given.get(word), separators, f"{part['id']}, word {word!r}")
                          for word in reference}
    except BPEAnswerError as error:
        return PartResult(part["id"], Verdict.INVALID, Fraction(0), maximum, expected, str(error))
    extra = sorted(set(_given_words(raw)) - set(reference))
    if all(tokens is None for tokens in tokens_by_word.values()):
        if extra:
            return PartResult(part["id"], Verdict.WRONG, Fraction(0), maximum, expected,
                              f"No answer for the words asked ({', '.join(reference)}). The words given are not "
                              f"asked in this part, so not marked: {', '.join(extra)}. Check that you answered "
                              "your own paper's words.")
        return PartResult(part["id"], Verdict.MISSING, Fraction(0), maximum, expected, "No answer given.")

    per_word = maximum / len(reference)
    right = 0
    notes, mistake = [], None
    for word, tokens in tokens_by_word.items():
        if tokens == reference[word]:
            right += 1
            continue
        if tokens is None:
            notes.append(f"{word}: no answer given.")
            continue
        note = f"{word}: expected {expected[word]}, found {' '.join(tokens)}."
        for name, mistaken_tokens in mistaken(word).items():
            if tokens == mistaken_tokens:
                note += f" This matches {mistakes.describe(name)}."
                mistake = mistake or name
                break
        notes.append(note)
    if extra:
        notes.append("Not asked, so not marked: " + ", ".join(extra) + ".")

    marks = per_word * right
    if right < len(reference):
        return PartResult(part["id"], Verdict.WRONG, marks, maximum, expected, " ".join(notes), mistake)
    if own_branch:
        return PartResult(part["id"], Verdict.ACCEPTED_TIE_BRANCH, marks, maximum, expected,
                          "Right for your own valid merges. " + " ".join(notes))
    return PartResult(part["id"], Verdict.CORRECT, marks, maximum, expected, ("All right. " + " ".join(notes)).strip())


def _given_words(raw: object) -> list[str]:
    return [str(word).strip() for word in raw] if isinstance(raw, dict) else []


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"
