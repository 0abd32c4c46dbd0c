"""BPE question types: vocabulary sizes, valid runs, target vocabulary, difficulty and ties,
checked against the reference BPE and hand-derived examples."""

from __future__ import annotations

import logging
from fractions import Fraction

import numpy as np
import pytest

from generator import bpe, bpe_reference
from generator.bpe_questions import (
    BPE_DIFFICULTY,
    build_bpe_encode,
    build_bpe_train,
    build_bpe_valid_run,
    build_bpe_vocab,
    count_builds_on,
    difficulty_settings,
)
from generator.errors import ProblemError
from marker.rubric import mark_choice, mark_integer


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# Reference BPE against generator/bpe.py

def test_reference_hand_example():
    """low lowish, separate </w>: l o and o w both occur twice, so two runs of two merges are valid."""
    words = [("low", 1), ("lowish", 1)]
    assert bpe_reference.valid_runs(words, 2) == [[("l", "o"), ("lo", "w")], [("o", "w"), ("l", "ow")]]
    merges, segmentation, had_tie = bpe_reference.train(words, 2)
    assert merges == [("l", "o"), ("lo", "w")]
    assert segmentation == {"low": ["low", "</w>"], "lowish": ["low", "i", "s", "h", "</w>"]}
    assert had_tie is True


@pytest.mark.parametrize("end_of_word", ["separate", "attached", "none"])
@pytest.mark.parametrize("tie_rule", ["first", "lexicographic"])
def test_reference_agrees_with_bpe(end_of_word, tie_rule):
    conventions = bpe.BPEConventions(bpe.EndOfWord(end_of_word), bpe.TieRule(tie_rule))
    generator = rng(5)
    for _ in range(60):
        words = [(str(w), int(generator.integers(1, 7)))
                 for w in generator.choice(["lower", "lowest", "newer", "newest", "wider", "low", "banana", "bandana"],
                                           size=4, replace=False)]
        trace = bpe.train(words, num_merges=6, conventions=conventions)
        merges, segmentation, had_tie = bpe_reference.train(words, 6, end_of_word, tie_rule)
        assert merges == trace.merges
        assert segmentation == trace.segmentation()
        assert had_tie == any(step.is_tie for step in trace.steps)
        assert sorted(bpe_reference.valid_runs(words, 4, end_of_word)) == sorted(
            bpe.all_branches(words, 4, conventions))
        for word in ("lowly", "bandz", "newq"):
            for unseen in ("keep", "unk"):
                c = bpe.BPEConventions(bpe.EndOfWord(end_of_word), bpe.TieRule(tie_rule), unseen=bpe.UnseenPolicy(unseen))
                known = bpe.training_characters(words)
                assert bpe_reference.encode(word, trace.merges, end_of_word, known, unseen) == bpe.encode(
                    word, trace.merges, c, known)


# Vocabulary size

@pytest.mark.parametrize("end_of_word, initial", [("separate", 7), ("attached", 7), ("none", 6)])
def test_vocab_hand_example(end_of_word, initial):
    """low lowish: separate gives l o w </w> i s h (7); attached gives l o w</w> w i s h</w> (7); none gives 6."""
    spec = {"fixed": {"corpus": "low lowish", "merges": 3, "target_vocab": initial + 2},
            "conventions": {"end_of_word": end_of_word}}
    question = build_bpe_vocab("q1", spec, rng(0))
    expected = {part.name: part.expected for part in question.parts}
    assert expected == {"initial": initial, "after_merges": initial + 3, "merges_needed": 2}
    assert [part.kind for part in question.parts] == ["integer"] * 3


def test_vocab_unreachable_target():
    spec = {"fixed": {"corpus": "ab", "merges": 1, "target_vocab": 50}}
    with pytest.raises(ProblemError, match="target_vocab"):
        build_bpe_vocab("q1", spec, rng(0))


def test_vocab_random_variants_consistent():
    for seed in range(30):
        question = build_bpe_vocab("q1", {"difficulty": "easy"}, rng(seed))
        words = [(item["word"], item["count"]) for item in question.problem["corpus"]]
        merges, _, _ = bpe_reference.train(words, question.problem["merges"])
        initial, after, needed = (part.expected for part in question.parts)
        assert bpe_reference.vocabulary_size(words, []) == initial
        assert bpe_reference.vocabulary_size(words, merges) == after
        assert needed == question.problem["target_vocab"] - initial
        assert needed > question.problem["merges"]


# Training to a target vocabulary size

def test_train_to_target_vocab():
    question = build_bpe_train("q1", {"fixed": {"corpus": "low lowish", "target_vocab": 10}}, rng(0))
    assert question.problem["merges"] == 3
    assert question.problem["target_vocab"] == 10
    assert question.parts[0].expected == ["l o", "lo w", "low </w>"]


def test_train_random_target_vocab():
    for seed in range(10):
        question = build_bpe_train("q1", {"stop": "target_vocab", "difficulty": "easy"}, rng(seed))
        assert question.problem["target_vocab"] == len(question.solution.initial_vocab) + question.problem["merges"]


# Difficulty and ties

@pytest.mark.parametrize("level", ["easy", "medium", "hard"])
@pytest.mark.parametrize("ties", ["avoid", "require", "allow"])
def test_train_keeps_difficulty_and_ties(level, ties):
    bounds = BPE_DIFFICULTY[level]
    for seed in range(15):
        question = build_bpe_train("q1", {"difficulty": level, "ties": ties}, rng(seed))
        trace = question.solution
        words = trace.words
        assert len(words) == bounds["words"]
        assert len(trace.steps) == bounds["merges"]
        assert max(count for _, count in words) <= bounds["max_count"]
        assert len(bpe.training_characters(words)) <= bounds["max_characters"]
        assert max(len(step.pair_counts) for step in trace.steps) <= bounds["max_pairs"]
        assert count_builds_on(trace.merges) >= bounds["build_on"]
        runs = bpe_reference.valid_runs(words, bounds["merges"])
        if ties == "avoid":
            assert len(runs) == 1
            assert len(question.parts[0].accepted) == 1
        if ties == "require":
            assert len(runs) > 1


def test_explicit_fields_override_difficulty():
    settings = difficulty_settings({"difficulty": "easy", "merges": 6, "words": 4})
    assert settings == {**BPE_DIFFICULTY["easy"], "merges": 6, "words": 4}
    question = build_bpe_train("q1", {"difficulty": "easy", "merges": 6, "words": 4}, rng(2))
    assert len(question.solution.steps) == 6
    assert len(question.problem["corpus"]) == 4


def test_rejected_draws_logged_at_debug(caplog):
    with caplog.at_level(logging.DEBUG, logger="generator.bpe_questions"):
        build_bpe_train("q1", {"difficulty": "hard", "ties": "avoid"}, rng(0))
    rejected = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert rejected
    assert all(r.levelno == logging.DEBUG for r in rejected)
    assert "q1: bpe_train draw" in rejected[0].getMessage()


def test_impossible_settings_raise():
    with pytest.raises(ProblemError, match="settings that a random corpus can meet"):
        build_bpe_train("q1", {"difficulty": "easy", "max_characters": 2}, rng(0))


# Encoding with unseen characters

@pytest.mark.parametrize("end_of_word", ["separate", "attached", "none"])
@pytest.mark.parametrize("unseen", ["keep", "unk"])
def test_encode_unseen_policies(end_of_word, unseen):
    for seed in range(10):
        question = build_bpe_encode("q1", {"conventions": {"end_of_word": end_of_word, "unseen": unseen}}, rng(seed))
        known = set(question.problem["training_characters"])
        *seen_words, last = question.problem["words"]
        assert all(set(word) <= known for word in seen_words)
        assert sum(c not in known for c in last) == 1
        tokens = question.parts[0].expected[last].split()
        if unseen == "unk":
            assert any(t.startswith("[UNK]") for t in tokens)
        else:
            assert bpe.decode(tokens) == last
        for word in seen_words:
            assert bpe.decode(question.parts[0].expected[word].split()) == word


# Which merge list is a valid run

def test_valid_run_avoid_has_one_answer():
    for seed in range(20):
        question = build_bpe_valid_run("q1", {"ties": "avoid", "difficulty": "easy"}, rng(seed))
        assert len(question.parts[0].expected) == 1
        assert question.parts[0].kind == "choice"
        assert len(question.problem["options"]) == 4


def test_valid_run_options_match_reference():
    letters_seen = set()
    mistakes_seen = set()
    for seed in range(30):
        question = build_bpe_valid_run("q1", {"ties": "require", "options": 5}, rng(seed))
        words = [(item["word"], item["count"]) for item in question.problem["corpus"]]
        expected = set(question.parts[0].expected.split(", "))
        letters_seen |= expected
        options = question.problem["options"]
        assert [o["letter"] for o in options] == list("ABCDE")
        for option, solved in zip(options, question.solution_json["options"], strict=True):
            merges = [tuple(m.split(" ")) for m in option["merges"]]
            assert len(merges) == question.problem["merges"]
            assert bpe_reference.is_valid_run(words, merges) == (option["letter"] in expected)
            if solved["mistake"]:
                mistakes_seen.add(solved["mistake"])
    # Shuffled: the right answer is not always in the same place.
    assert len(letters_seen) >= 4
    assert {"pairs counted across word boundaries", "word frequencies ignored",
            "end-of-word marker forgotten", "merges from two different tie branches"} <= mistakes_seen


def test_valid_run_no_marker_option_without_marker():
    for seed in range(10):
        question = build_bpe_valid_run("q1", {"ties": "allow", "conventions": {"end_of_word": "none"}}, rng(seed))
        assert all(o["mistake"] != "end-of-word marker forgotten" for o in question.solution_json["options"])


def test_valid_run_same_seed_same_options():
    first = build_bpe_valid_run("q1", {"ties": "require"}, rng(9)).problem
    second = build_bpe_valid_run("q1", {"ties": "require"}, rng(9)).problem
    assert first == second


# Marking of the new part kinds

def test_mark_choice_cases():
    part = {"expected": "A, C", "marks": 2}
    assert mark_choice(part, "A, C") == ("correct", Fraction(2), "Right: A, C.")
    assert mark_choice(part, "(c) and (a)")[0] == "correct"
    verdict, marks, feedback = mark_choice(part, "A")
    assert (verdict, marks) == ("wrong", 0)
    assert "missed C" in feedback
    assert mark_choice(part, "the first one")[0] == "invalid"
    assert mark_choice(part, "  ")[0] == "missing"
    assert mark_choice(part, {"a": 1})[0] == "invalid"


def test_mark_integer_cases():
    part = {"expected": 1048576, "marks": 2}
    assert mark_integer(part, "1048576") == ("correct", Fraction(2), "Right: 1048576.")
    assert mark_integer(part, "1 048 576")[0] == "correct"
    assert mark_integer(part, 1048576)[0] == "correct"
    assert mark_integer(part, "1048575") == ("wrong", Fraction(0), "Wrong: 1048575; the answer is 1048576.")
    verdict, _, feedback = mark_integer(part, "1,048,576")
    assert verdict == "invalid"
    assert "comma" in feedback
    assert mark_integer(part, "2^20")[0] == "invalid"
    assert mark_integer(part, "")[0] == "missing"
    assert mark_integer(part, "9" * 100)[0] == "invalid"
