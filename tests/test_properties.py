"""Properties that hold for every input: readers fail only with their own errors, BPE keeps its invariants.

The hypothesis profile in conftest.py draws the same examples on every run.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator import bpe, bpe_reference
from generator.errors import InputFileError, ProblemError
from generator.paper import build_paper
from generator.spec import bundled_spec_path, load_spec
from hostile.answers import answer_file_data, expected_answers
from marker.answers import load_answers
from marker.core import mark_submission
from marker.errors import AnswerFormatError
from marker.mathread import read_value

# A hang guard, not a speed requirement: the reader's own budget stops a read after 2 s.
READ_GUARD = timedelta(seconds=20)
FILE_SETTINGS = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ---- the math reader -------------------------------------------------------------------

MATH_PIECES = ["0", "1", "2", "9", "0.5", ".5", "1e3", "1e-3", "10^400", "e", "E", "exp(", "log(", "ln(", "sqrt(",
               "(", ")", "[", "]", ",", ";", " ", "+", "-", "\u2212", "*", "/", "^", "**", "9**9**9", "x", "!", "nan",
               "_", "'", '"', "__import__", "{", "}", "\u00a0", "0,5"]
math_texts = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(MATH_PIECES), max_size=60).map("".join),
    st.text(alphabet="0123456789.eE+-*/^()[],; ", max_size=120),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.decimals(), math_texts)
raw_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=5), inner, max_size=3)), max_leaves=20)
# The same without Decimal, which a YAML file cannot hold.
yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), math_texts)
yaml_values = st.recursive(yaml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=5), inner, max_size=3)), max_leaves=20)
shapes = st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4)))
kinds = st.sampled_from(["scalar", "vector", "matrix"])


@settings(deadline=READ_GUARD)
@given(text=math_texts, kind=kinds, shape=shapes)
def test_math_reader_text_fails_cleanly(text, kind, shape):
    try:
        reading = read_value(text, kind, shape)
    except AnswerFormatError as error:
        assert str(error)
        return
    assert reading.value is not None
    assert reading.value.is_number if kind == "scalar" else reading.value.is_Matrix


@settings(deadline=READ_GUARD)
@given(raw=raw_values, kind=kinds, shape=shapes)
def test_math_reader_values_fail_cleanly(raw, kind, shape):
    try:
        read_value(raw, kind, shape)
    except AnswerFormatError as error:
        assert str(error)


@settings(deadline=READ_GUARD)
@given(numerator=st.integers(-10**6, 10**6), places=st.integers(0, 8))
def test_math_reader_decimals_exact(numerator, places):
    """A decimal is read as the exact rational it writes, never through a binary float."""
    text = f"{numerator / 10**places:.{places}f}" if places else str(numerator)
    expected = pytest.importorskip("sympy").Rational(text)

    reading = read_value(text, "scalar")

    assert reading.value == expected


# ---- the answer-file loader ------------------------------------------------------------

@pytest.fixture(scope="module")
def practice_key() -> dict:
    return json.loads(build_paper(load_spec(bundled_spec_path()), 1).key_json())


@FILE_SETTINGS
@given(data=st.binary(max_size=2000))
def test_loader_survives_arbitrary_bytes(tmp_path, practice_key, data):
    path = tmp_path / "answers.yaml"
    path.write_bytes(data)

    try:
        answer_file = load_answers(path, practice_key)
    except InputFileError as error:
        assert str(path) in str(error)
        return
    mark_submission(practice_key, answer_file)


YAML_PIECES = ["format: mlexam-answers\n", "format_version: 1\n", "answers:\n", "  q1:\n", "    merges: ", "  q4:\n",
               "    y: ", "[", "]", "{", "}", "- ", "&a ", "*a ", "!!python/object/apply:os.system ", "!!binary ",
               "'", '"', ": ", "\n", "  ", "\t", "#", "0.731", "e/(1+e)", "null", "~", "? ", "---\n", "...\n", "%YAML 1.1\n"]


@FILE_SETTINGS
@given(pieces=st.lists(st.sampled_from(YAML_PIECES), max_size=40))
def test_loader_survives_yaml_fragments(tmp_path, practice_key, pieces):
    path = tmp_path / "answers.yaml"
    path.write_text("".join(pieces), encoding="utf-8")

    try:
        answer_file = load_answers(path, practice_key)
    except InputFileError:
        return
    mark_submission(practice_key, answer_file)


@settings(FILE_SETTINGS, max_examples=25)
@given(data=st.data())
def test_marker_survives_any_part_values(tmp_path, practice_key, data):
    """Any YAML value in any part is marked, with the part invalid, wrong, missing or right."""
    answers = expected_answers(practice_key)
    for question in practice_key["questions"]:
        for part in question["parts"]:
            if data.draw(st.booleans()):
                answers[question["id"]][part["name"]] = data.draw(yaml_values)
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump(answer_file_data(practice_key, answers), allow_unicode=True), encoding="utf-8")

    try:
        answer_file = load_answers(path, practice_key)
    except InputFileError:
        return
    report = mark_submission(practice_key, answer_file)

    assert len(report.parts) == sum(len(question["parts"]) for question in practice_key["questions"])
    assert 0 <= report.total <= report.maximum


# ---- the spec loader -------------------------------------------------------------------

SPEC_KEYS = ["format", "format_version", "title", "sections", "questions", "type", "marks", "fixed", "corpus",
             "merges", "words", "W", "x", "b", "t", "conventions", "end_of_word", "parts", "decimal_places",
             "duration_minutes", "bpe_train", "backprop_softmax", "mlexam-spec", "ties"]
spec_scalars = st.one_of(st.sampled_from(SPEC_KEYS), st.integers(-3, 20), st.booleans(), st.none(),
                         st.text(max_size=8), st.floats(allow_nan=True))
spec_values = st.recursive(spec_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(SPEC_KEYS), inner, max_size=4)), max_leaves=25)
SPEC_TEXT_PIECES = ["format: mlexam-spec\n", "format_version: 1\n", "title: t\n", "sections:\n", "  - questions:\n",
                    "      - type: bpe_train\n", "        marks: {merges: 2}\n", "? [a]\n: 1\n", "{a: 1}: 2\n",
                    "x: !!binary zz\n", "d: 2001-01-01\n", "[", "]", "{", "}", "&a ", "*a", "\n", "- ", ": "]


def check_spec_text(folder, text: str) -> None:
    path = folder / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_spec(path)
    except InputFileError as error:
        assert str(path) in str(error)


@FILE_SETTINGS
@given(value=spec_values)
def test_spec_loader_structures(tmp_path, value):
    check_spec_text(tmp_path, yaml.safe_dump(value, allow_unicode=True))


@FILE_SETTINGS
@given(base=st.fixed_dictionaries({"sections": spec_values}), extra=spec_values)
def test_spec_loader_near_valid(tmp_path, base, extra):
    spec = {"format": "mlexam-spec", "format_version": 1, "title": "t", **base}
    if isinstance(extra, dict):
        spec.update(extra)
    check_spec_text(tmp_path, yaml.safe_dump(spec, allow_unicode=True))


@FILE_SETTINGS
@given(pieces=st.lists(st.sampled_from(SPEC_TEXT_PIECES), max_size=30))
def test_spec_loader_text_fragments(tmp_path, pieces):
    check_spec_text(tmp_path, "".join(pieces))


BASE_SPEC = "format: mlexam-spec\nformat_version: 1\ntitle: t\n"
SPEC_CRASHERS = [
    ("list as type", BASE_SPEC + "sections: [{questions: [{type: [1]}]}]\n"),
    ("list as mark key", BASE_SPEC + "sections: [{questions: [{type: bpe_train, marks: {[1]: 2}}]}]\n"),
    ("list as version", "format: mlexam-spec\nformat_version: [1]\ntitle: t\nsections: []\n"),
    ("mapping as key", BASE_SPEC + "{a: 1}: 2\nsections: []\n"),
    ("list as convention name", BASE_SPEC + "sections: [{questions: [{type: bpe_train, conventions: {[a]: 1}}]}]\n"),
    ("bad binary", BASE_SPEC + "x: !!binary zz\nsections: []\n"),
    ("deep flow nesting", BASE_SPEC + "x: " + "[" * 5000 + "]" * 5000 + "\n"),
]


@pytest.mark.parametrize("case, text", SPEC_CRASHERS, ids=[case for case, _ in SPEC_CRASHERS])
def test_spec_loader_rejects_odd_yaml(tmp_path, case, text):
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(InputFileError) as raised:
        load_spec(path)

    assert str(path) in str(raised.value)


# ---- the BPE solver --------------------------------------------------------------------

corpora = st.lists(st.tuples(st.text(alphabet="abcde", min_size=1, max_size=6), st.integers(1, 5)),
                   min_size=1, max_size=5, unique_by=lambda item: item[0])
conventions = st.builds(bpe.BPEConventions, end_of_word=st.sampled_from(list(bpe.EndOfWord)),
                        tie_rule=st.sampled_from(list(bpe.TieRule)), min_count=st.integers(1, 2))


@given(words=corpora, rules=conventions, num_merges=st.integers(0, 10),
       new_words=st.lists(st.text(alphabet="abcdefxyz", min_size=1, max_size=8), max_size=4))
def test_bpe_decode_gives_back_word(words, rules, num_merges, new_words):
    trace = bpe.train(words, num_merges=num_merges, conventions=rules)

    for word, tokens in trace.segmentation().items():
        assert bpe.decode(tokens) == word
    for word in new_words + [word for word, _ in words]:
        assert bpe.decode(bpe.encode(word, trace.merges, rules)) == word


@given(words=corpora, rules=conventions, num_merges=st.integers(1, 10))
def test_bpe_pair_counts_match_recount(words, rules, num_merges):
    """Each step's pair counts equal a from-scratch recount of the corpus the previous merge left."""
    trace = bpe.train(words, num_merges=num_merges, conventions=rules)
    corpus = [(list(symbols), count) for symbols, count in trace.initial_corpus]

    for step in trace.steps:
        recount = dict(bpe_reference.pair_counts(corpus))
        assert dict(step.pair_counts) == recount
        assert step.max_count == max(recount.values())
        assert step.merge in step.tied
        corpus = [(bpe_reference.apply_merge(symbols, step.merge), count) for symbols, count in corpus]
        assert [(list(symbols), count) for symbols, count in step.corpus_after] == corpus


@given(words=corpora, rules=conventions, num_merges=st.integers(1, 10))
def test_bpe_vocab_grows_by_new_symbols(words, rules, num_merges):
    trace = bpe.train(words, num_merges=num_merges, conventions=rules)
    vocab = list(trace.initial_vocab)

    for step in trace.steps:
        size_before = len(vocab)
        is_new = step.new_symbol not in vocab
        if is_new:
            vocab.append(step.new_symbol)
        assert len(vocab) == size_before + (1 if is_new else 0)
    assert trace.vocab == vocab
    assert len(trace.vocab) == bpe_reference.vocabulary_size(words, trace.merges, rules.end_of_word.value)


@given(words=corpora, num_merges=st.integers(1, 4))
def test_bpe_every_branch_is_valid_run(words, num_merges):
    branches = bpe.all_branches(words, num_merges)

    assert bpe.train(words, num_merges=num_merges).merges in branches
    for merges in branches:
        assert bpe_reference.is_valid_run(words, merges)


# ---- a key marks itself ----------------------------------------------------------------

@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1))
def test_key_marks_itself_full(tmp_path_factory, seed):
    """An answer file filled with a generated key's expected values earns full marks."""
    key = json.loads(build_paper(load_spec(bundled_spec_path()), seed).key_json())
    path = tmp_path_factory.mktemp("self-mark") / "answers.yaml"
    path.write_text(yaml.safe_dump(answer_file_data(key), allow_unicode=True), encoding="utf-8")

    report = mark_submission(key, load_answers(path, key))

    assert [result.id for result in report.parts if result.marks != result.maximum] == []
    assert report.total == report.maximum == key["total_marks"]


@settings(max_examples=20)
@given(word=st.lists(st.sampled_from(["a", "b", "</w>", "<", "/", "w>"]), min_size=1, max_size=6).map("".join))
def test_bpe_decode_words_with_marker_text(word):
    """A word that contains the text `</w>` is rejected as a word, or decodes to itself."""
    try:
        tokens = bpe.encode(word, [])
    except ProblemError:
        return
    assert bpe.decode(tokens) == word
