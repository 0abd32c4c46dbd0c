"""Every question type: its builder, the fields a spec may set and the parts it asks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from generator import backprop, backprop_questions, bpe_questions, concept_questions
from generator import network_questions
from generator.question import Question


@dataclass(frozen=True)
class QuestionType:
    name: str
    build: Callable[[str, dict, np.random.Generator, int], Question]  # (question id, spec, rng, decimal places)
    fields: frozenset[str]  # fields a spec may set for this type, besides type, title and marks
    parts: tuple[str, ...]  # part names, in the order the paper asks them
    fixed_fields: tuple[str, ...]  # fields a `fixed` problem must give
    # For error carried forward: (problem dict, part name, the student's values by part
    # name) -> the value of that part computed from the student's own earlier values,
    # or None when no earlier value it depends on was given.
    carry_forward: Callable[[dict, str, dict], object] | None = None
    # (problem dict, part name, value) -> whether the value may be carried into later parts.
    admissible: Callable[[dict, str, object], bool] | None = None


QUESTION_TYPES: dict[str, QuestionType] = {t.name: t for t in [
    QuestionType("bpe_train", lambda qid, spec, rng, places: bpe_questions.build_bpe_train(qid, spec, rng),
                 frozenset({"fixed", "conventions", "ties", "words", "merges", "max_count", "encode"}),
                 ("merges", "segmentation", "encodings"), ("corpus", "merges")),
    QuestionType("bpe_encode", lambda qid, spec, rng, places: bpe_questions.build_bpe_encode(qid, spec, rng),
                 frozenset({"fixed", "conventions", "words", "merges", "max_count", "new_words"}),
                 ("encodings",), ("corpus", "merges", "words")),
    QuestionType("backprop_softmax", backprop_questions.build_backprop_softmax,
                 frozenset({"fixed", "parts", "classes", "inputs", "magnitude", "learning_rate"}),
                 backprop_questions.QUANTITY_ORDER, ("W", "x", "b", "t"),
                 carry_forward=backprop.carry_forward, admissible=backprop.admissible),
    QuestionType("bpe_vocab", lambda qid, spec, rng, places: bpe_questions.build_bpe_vocab(qid, spec, rng),
                 frozenset({"fixed", "conventions", "ties", "words", "merges", "max_count"}),
                 ("initial", "after_merges", "merges_needed"), ("corpus", "merges", "target_vocab")),
    QuestionType("bpe_valid_run", lambda qid, spec, rng, places: bpe_questions.build_bpe_valid_run(qid, spec, rng),
                 frozenset({"fixed", "conventions", "ties", "words", "merges", "max_count", "options"}),
                 ("choice",), ("corpus", "merges")),
    # The parts of a concept question are the ids of the bank questions it draws.
    QuestionType("concept", concept_questions.build_concept, frozenset({"id", "topic", "count"}), (), ()),
]}

# Sigmoid, squared-error, two-layer and batch-mean backpropagation.
QUESTION_TYPES.update({name: QuestionType(
    name, network_questions.builder(name), frozenset(network_questions.FIELDS[name]),
    network_questions.PART_ORDER[name], network_questions.FIXED_FIELDS[name],
    carry_forward=network_questions.carry_forward_for(name), admissible=network_questions.admissible_for(name),
) for name in network_questions.NETWORK_TYPES})
