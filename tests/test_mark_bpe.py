"""Marking of BPE questions: tie branches, the student's own corpus, traces and named mistakes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from generator.paper import build_paper
from generator.spec import bundled_spec_path, load_spec
from marker import mark_submission
from marker.report import Verdict


def build_key(tmp_path: Path, questions: list[dict]) -> dict:
    spec = {"format": "mlexam-spec", "format_version": 1, "title": "BPE marking test",
            "sections": [{"title": "BPE", "questions": questions}]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return build_paper(load_spec(path), 1).key_dict()


# aaabdaaabac, no end-of-word marker, 3 merges. Step 1 merges (a, a), which occurs 4
# times. The corpus is then `aa a b d aa a b a c`, where (aa, a) and (a, b) both occur
# twice, so two runs are valid: [a a, aa a, aaa b] and [a a, a b, aa ab].
@pytest.fixture
def aaab_key(tmp_path):
    return build_key(tmp_path, [{
        "type": "bpe_train", "conventions": {"end_of_word": "none"},
        "fixed": {"corpus": "aaabdaaabac", "merges": 3, "encode": ["ab"]},
        "marks": {"merges": 3, "segmentation": 1, "encodings": 1},
    }])


def test_aaab_key_branch_full_marks(aaab_key):
    report = mark_submission(aaab_key, {"q1": {"merges": ["a a", "aa a", "aaa b"],
                                               "segmentation": {"aaabdaaabac": "aaab d aaab a c"},
                                               "encodings": {"ab": "a b"}}})
    assert report.part("q1.merges").verdict == Verdict.CORRECT
    assert report.total == 5


def test_aaab_other_branch_full_marks(aaab_key):
    report = mark_submission(aaab_key, {"q1": {"merges": ["a a", "a b", "aa ab"],
                                               "segmentation": {"aaabdaaabac": "aaab d aaab a c"},
                                               "encodings": {"ab": "ab"}}})
    merges = report.part("q1.merges")
    assert merges.verdict == Verdict.ACCEPTED_TIE_BRANCH
    assert merges.marks == 3
    assert report.part("q1.segmentation").marks == 1
    assert report.part("q1.encodings").verdict == Verdict.ACCEPTED_TIE_BRANCH
    assert report.total == 5


def test_aaab_mixed_branches_lose_step_three(aaab_key):
    report = mark_submission(aaab_key, {"q1": {"merges": ["a a", "a b", "aaa b"]}})
    merges = report.part("q1.merges")
    assert merges.verdict == Verdict.WRONG
    assert merges.marks == 2
    assert [step["right"] for step in merges.working["steps"]] == [True, True, False]
    assert "Step 3" in merges.feedback


def test_aaab_encoding_uses_own_merges(aaab_key):
    # With the key's branch, (a, b) is never learned, so ab stays a b.
    key_branch = mark_submission(aaab_key, {"q1": {"merges": ["a a", "aa a", "aaa b"], "encodings": {"ab": "ab"}}})
    assert key_branch.part("q1.encodings").verdict == Verdict.WRONG
    assert key_branch.part("q1.encodings").expected == {"ab": "a b"}
    own_branch = mark_submission(aaab_key, {"q1": {"merges": ["a a", "a b", "aa ab"], "encodings": {"ab": "a b"}}})
    assert own_branch.part("q1.encodings").verdict == Verdict.WRONG
    assert own_branch.part("q1.encodings").expected == {"ab": "ab"}


def test_invalid_pair_is_invalid_not_wrong(aaab_key):
    report = mark_submission(aaab_key, {"q1": {"merges": ["a a", "aab", "aaa b"]}})
    merges = report.part("q1.merges")
    assert merges.verdict == Verdict.INVALID
    assert merges.marks == 0
    assert "merge 2" in merges.feedback
    assert "space between them" in merges.feedback


def test_merges_in_one_string(aaab_key):
    report = mark_submission(aaab_key, {"q1": {"merges": "a a, a b, aa ab"}})
    assert report.part("q1.merges").verdict == Verdict.ACCEPTED_TIE_BRANCH


# {bc: 1, a: 1, aaa: 1} with a separate </w>: (a, </w>) and (a, a) both occur twice.
# After a </w>, all four remaining pairs occur once, (a, a) among them; after a a, only
# (a, </w>) has the maximum. So five runs of two merges are valid.
@pytest.fixture
def small_key(tmp_path):
    return build_key(tmp_path, [{"type": "bpe_train", "fixed": {"corpus": {"bc": 1, "a": 1, "aaa": 1}, "merges": 2},
                                 "marks": {"merges": 2, "segmentation": 3}}])


def test_all_five_branches_accepted(small_key):
    branches = small_key["questions"][0]["parts"][0]["accepted"]
    assert len(branches) == 5
    for branch in branches:
        merges = mark_submission(small_key, {"q1": {"merges": branch}}).part("q1.merges")
        assert merges.marks == 2, branch
        assert merges.verdict in (Verdict.CORRECT, Verdict.ACCEPTED_TIE_BRANCH)


def test_trace_wrong_count_loses_one_step(small_key):
    first = {"merge": "a </w>", "counts": {"a </w>": 2, "a a": 2}, "corpus": "b c </w> a</w> a a a</w>"}
    wrong_count = {"merge": "b c", "counts": {"b c": 1, "c </w>": 1, "a a": 0, "a a</w>": 1},
                   "corpus": ["bc </w>", "a</w>", "a a a</w>"]}
    report = mark_submission(small_key, {"q1": {"trace": [first, wrong_count]}})
    merges = report.part("q1.merges")
    assert merges.verdict == Verdict.WRONG
    assert merges.marks == 1
    assert [step["right"] for step in merges.working["steps"]] == [True, False]
    assert "count of a a is 1, not 0" in merges.feedback

    right_count = {**wrong_count, "counts": {"b c": 1, "c </w>": 1, "a a": 1, "a a</w>": 1}}
    assert mark_submission(small_key, {"q1": {"trace": [first, right_count]}}).part("q1.merges").marks == 2


def test_trace_slip_keeps_own_branch(small_key):
    # The merges a a, a </w> are a valid run, so a wrong count in the working costs
    # that step only, and the segmentation is still marked against the student's run.
    trace = [{"merge": "a a", "counts": {"a a": 1, "a </w>": 2}}, {"merge": "a </w>"}]
    segmentation = {"bc": "b c </w>", "a": "a</w>", "aaa": "aa a</w>"}
    report = mark_submission(small_key, {"q1": {"trace": trace, "segmentation": segmentation}})
    assert report.part("q1.merges").marks == 1
    assert report.part("q1.segmentation").verdict == Verdict.ACCEPTED_TIE_BRANCH
    assert report.part("q1.segmentation").marks == 3


def test_trace_wrong_corpus_loses_step(small_key):
    first = {"merge": "a </w>", "corpus": "b c </w> a </w> a a a </w>"}
    second = {"merge": "b c", "corpus": "bc </w> a</w> a a a</w>"}
    merges = mark_submission(small_key, {"q1": {"trace": [first, second]}}).part("q1.merges")
    assert merges.marks == 1
    assert "corpus after the merge" in merges.feedback


def test_trace_not_a_list_is_invalid(small_key):
    merges = mark_submission(small_key, {"q1": {"trace": "a </w> then b c"}}).part("q1.merges")
    assert merges.verdict == Verdict.INVALID


def test_segmentation_follows_own_branch(small_key):
    answers = {"q1": {"merges": ["a a", "a </w>"], "segmentation": {"bc": "b c </w>", "a": "a</w>", "aaa": "aa a</w>"}}}
    segmentation = mark_submission(small_key, answers).part("q1.segmentation")
    assert segmentation.verdict == Verdict.ACCEPTED_TIE_BRANCH
    assert segmentation.marks == 3


def test_segmentation_per_word_marks(small_key):
    answers = {"q1": {"merges": ["a </w>", "b c"], "segmentation": {"bc": "bc </w>", "a": "a </w>", "aaa": "a a a</w>"}}}
    segmentation = mark_submission(small_key, answers).part("q1.segmentation")
    assert segmentation.verdict == Verdict.WRONG
    assert segmentation.marks == 2


# Merges [(b, c), (a, b)] in that order: encoding abc applies the lowest rank first,
# (b, c), giving a bc </w>; (a, bc) is not a rule. Left to right would give ab c </w>.
@pytest.fixture
def order_key(tmp_path):
    return build_key(tmp_path, [{"type": "bpe_encode", "fixed": {"corpus": {"ab": 1, "bcbc": 1}, "merges": 2,
                                                                 "words": ["abc"]}}])


def test_encode_lowest_rank_first(order_key):
    assert order_key["questions"][0]["problem"]["merges"] == ["b c", "a b"]
    report = mark_submission(order_key, {"q1": {"encodings": {"abc": "a bc </w>"}}})
    assert report.part("q1.encodings").verdict == Verdict.CORRECT
    assert report.total == 1


def test_encode_left_to_right_named(order_key):
    encodings = mark_submission(order_key, {"q1": {"encodings": {"abc": ["ab", "c", "</w>"]}}}).part("q1.encodings")
    assert encodings.verdict == Verdict.WRONG
    assert encodings.marks == 0
    assert encodings.mistake == "left_to_right"
    assert "left to right" in encodings.feedback


def test_encode_invalid_answer(order_key):
    encodings = mark_submission(order_key, {"q1": {"encodings": "a bc </w>"}}).part("q1.encodings")
    assert encodings.verdict == Verdict.INVALID
    assert "one entry per word" in encodings.feedback


def test_frequencies_ignored_named(tmp_path):
    key = build_key(tmp_path, [{"type": "bpe_train", "conventions": {"end_of_word": "none"},
                                "fixed": {"corpus": {"xy": 1, "zw": 3}, "merges": 1}}])
    merges = mark_submission(key, {"q1": {"merges": ["x y"]}}).part("q1.merges")
    assert merges.verdict == Verdict.WRONG
    assert merges.mistake == "frequencies_ignored"
    assert "Step 1: x y occurs once, but the maximum count on your corpus is 3" in merges.feedback


def test_pairs_across_words_named(tmp_path):
    # Read as one stream, a b b a contains (b, b), which never occurs inside a word.
    key = build_key(tmp_path, [{"type": "bpe_train", "conventions": {"end_of_word": "none"},
                                "fixed": {"corpus": "ab ba", "merges": 1}}])
    merges = mark_submission(key, {"q1": {"merges": ["b b"]}}).part("q1.merges")
    assert merges.verdict == Verdict.WRONG
    assert merges.mistake == "pairs_across_words"


def test_end_marker_left_out_named(tmp_path):
    key = build_key(tmp_path, [{"type": "bpe_train", "fixed": {"corpus": "low lowish", "merges": 4}}])
    answers = {"q1": {"merges": ["l o", "lo w", "low </w>", "low i"],
                      "segmentation": {"low": "low</w>", "lowish": "lowi s h"}}}
    segmentation = mark_submission(key, answers).part("q1.segmentation")
    assert segmentation.marks == Fraction(1)
    assert segmentation.mistake == "end_marker_forgotten"


def test_overlapping_merge_named(small_key):
    # With merges a a, a </w>: aaa is aa a</w>. Merging (a, a) over the whole run
    # a a a gives aaa at once, and then (a, </w>) no longer applies.
    answers = {"q1": {"merges": ["a a", "a </w>"],
                      "segmentation": {"bc": "b c </w>", "a": "a</w>", "aaa": "aaa </w>"}}}
    segmentation = mark_submission(small_key, answers).part("q1.segmentation")
    assert segmentation.verdict == Verdict.WRONG
    assert segmentation.marks == 2
    assert segmentation.mistake == "merged_overlaps"


def test_blank_answers_are_missing(tmp_path):
    key = build_key(tmp_path, [{"type": "bpe_train", "fixed": {"corpus": "low lowish", "merges": 4}}])
    report = mark_submission(key, {"q1": {"merges": ["", "", "", ""], "segmentation": {"low": "", "lowish": ""}}})
    assert [part.verdict for part in report.parts] == [Verdict.MISSING, Verdict.MISSING]
    assert report.total == 0


def test_uneven_split_is_exact(tmp_path):
    key = build_key(tmp_path, [{"type": "bpe_train", "fixed": {"corpus": "low lowish", "merges": 3},
                                "marks": {"merges": 2}}])
    merges = mark_submission(key, {"q1": {"merges": ["l o", "x y", "lo w"]}}).part("q1.merges")
    assert merges.marks == Fraction(4, 3)
    assert merges.to_dict()["marks"] == 1.33


@pytest.mark.parametrize("qtype", ["bpe_train", "bpe_encode"])
def test_practice_type_correct_wrong_invalid(qtype):
    key = build_paper(load_spec(bundled_spec_path()), 3).key_dict()
    question = next(q for q in key["questions"] if q["type"] == qtype and q["source"] == "random")
    last = question["parts"][-1]
    right = {part["name"]: part["expected"] for part in question["parts"]}
    report = mark_submission(key, {question["id"]: right})
    assert all(report.part(p["id"]).verdict == Verdict.CORRECT for p in question["parts"])

    wrong = dict(right)
    wrong[last["name"]] = {word: "q q q" for word in last["expected"]}
    assert mark_submission(key, {question["id"]: wrong}).part(last["id"]).marks == 0
    assert mark_submission(key, {question["id"]: wrong}).part(last["id"]).verdict == Verdict.WRONG

    invalid = dict(right)
    invalid[last["name"]] = 42
    result = mark_submission(key, {question["id"]: invalid}).part(last["id"])
    assert result.verdict == Verdict.INVALID
    assert result.marks == 0


def test_segmentation_of_other_words_named(small_key):
    """Words from another paper earn nothing, and the feedback names them instead of saying the part is blank."""
    report = mark_submission(small_key, {"q1": {"segmentation": {"low": "low </w>", "newest": "new est </w>"}}})

    result = report.part("q1.segmentation")
    assert result.verdict == Verdict.WRONG
    assert result.marks == 0
    assert "No answer for the words asked (bc, a, aaa)" in result.feedback
    assert "so not marked: low, newest" in result.feedback
