"""Exam specs: YAML files that say which questions a paper has, with their marks and settings.

Loading validates the whole file and reports every mistake at once, each with the
file, the line and the field, and what is allowed there.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from generator import network_questions
from generator.errors import InputFileError, yaml_fix
from generator.registry import QUESTION_TYPES
from mlexam.resources import resource_path

SPEC_FORMAT = "mlexam-spec"
SPEC_VERSIONS = {1}
DEFAULT_SPEC = "practice"
# A spec has a few hundred values; aliases that expand past this are a "billion laughs" file.
MAX_YAML_NODES = 100_000
# A spec nests about six levels (sections, questions, fixed, W rows).
MAX_YAML_DEPTH = 50
# A spec is a few kilobytes; a larger file is not a spec.
MAX_SPEC_BYTES = 1_000_000

TOP_FIELDS = {"format", "format_version", "title", "course", "instructions", "duration_minutes",
              "decimal_places", "sections"}
SECTION_FIELDS = {"title", "instructions", "questions"}
COMMON_QUESTION_FIELDS = {"type", "title", "marks", "decimal_places"}
# Fields that every BPE type with a random corpus accepts: a difficulty level and the
# bounds it sets, which a spec may override one by one.
BPE_DIFFICULTY_FIELDS = {"difficulty", "max_characters", "max_pairs", "build_on"}
EXTRA_FIELDS = {
    "bpe_train": BPE_DIFFICULTY_FIELDS | {"stop"},
    "bpe_encode": BPE_DIFFICULTY_FIELDS,
    "bpe_vocab": BPE_DIFFICULTY_FIELDS,
    "bpe_valid_run": BPE_DIFFICULTY_FIELDS,
}
CHOICES = {
    "difficulty": ("easy", "medium", "hard"),
    "ties": ("avoid", "allow", "require"),
    "stop": ("merges", "target_vocab"),
}
# (field, lowest, highest): bounds that keep a question on one page and hand-computable.
RANGES = (("classes", 2, 4), ("inputs", 1, 4), ("words", 2, 10), ("merges", 1, 12), ("max_count", 1, 20),
          ("new_words", 1, 6), ("max_characters", 2, 20), ("max_pairs", 4, 40), ("build_on", 0, 12),
          ("options", 3, 5), ("decimal_places", 0, 8))
CONVENTION_CHOICES = {
    "end_of_word": ("separate", "attached", "none"),
    "tie_rule": ("first", "lexicographic"),
    "unseen": ("keep", "unk"),
}


@dataclass
class Spec:
    """A validated exam spec."""

    path: Path
    data: dict
    sha256: str

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def decimal_places(self) -> int:
        return int(self.data.get("decimal_places", 3))


def bundled_spec_path(name: str = DEFAULT_SPEC) -> Path:
    return resource_path("question_banks", "specs", f"{name}.yaml")


def load_yaml_with_lines(text: str, source: str) -> tuple[object, dict[tuple, int]]:
    """Parse YAML safely and return the data with the 1-based line of every field, keyed by path."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise InputFileError(source, [f"nested more than {MAX_YAML_DEPTH} levels deep; a spec needs only a few "
                                      "levels"]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(error, "problem", error)
        raise InputFileError(source, [f"{where}invalid YAML: {problem}; {yaml_fix(str(problem), text)}"]) from None
    lines: dict[tuple, int] = {}
    built = 0

    def build(n, path):
        nonlocal built
        built += 1
        if built > MAX_YAML_NODES:
            raise InputFileError(source, [f"more than {MAX_YAML_NODES} YAML values, usually from nested aliases; "
                                          "write the spec out without aliases"])
        # A field keeps the line of its key, even when its value starts on a later line.
        lines.setdefault(path, n.start_mark.line + 1)
        if len(path) > MAX_YAML_DEPTH:
            raise InputFileError(source, [f"line {n.start_mark.line + 1}: nested more than {MAX_YAML_DEPTH} "
                                          "levels deep; a spec needs only a few levels"])
        if isinstance(n, yaml.MappingNode):
            result = {}
            for key_node, value_node in n.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise InputFileError(source, [f"line {key_node.start_mark.line + 1}: a field name must be "
                                                  "plain text, not a list or mapping"])
                key = key_node.value
                lines[path + (key,)] = key_node.start_mark.line + 1
                result[key] = build(value_node, path + (key,))
            return result
        if isinstance(n, yaml.SequenceNode):
            return [build(item, path + (index,)) for index, item in enumerate(n.value)]
        return _scalar(n, source)

    return (build(node, ()) if node is not None else None), lines


def _scalar(node: yaml.ScalarNode, source: str) -> object:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as error:
        raise InputFileError(source, [f"line {node.start_mark.line + 1}: invalid value {node.value[:40]!r}: "
                                      f"{getattr(error, 'problem', None) or error}"]) from None
    finally:
        loader.dispose()


def load_spec(path: Path | str) -> Spec:
    """Read and validate a spec; raise InputFileError listing every mistake."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise InputFileError(path, [f"the file has more than {MAX_SPEC_BYTES} bytes; a spec is a few kilobytes"])
        raw = path.read_bytes()
    except OSError as error:
        raise InputFileError(path, [f"cannot read the spec: {error.strerror}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputFileError(path, [f"byte {error.start}: not UTF-8 text; save the spec as UTF-8"]) from None
    data, lines = load_yaml_with_lines(text, str(path))
    problems = validate_spec(data, lines)
    if problems:
        raise InputFileError(path, problems)
    return Spec(path, data, hashlib.sha256(raw).hexdigest())


def validate_spec(data: object, lines: dict[tuple, int]) -> list[str]:
    problems: list[str] = []

    def report(path: tuple, message: str) -> None:
        line = lines.get(path) or lines.get(path[:-1]) or 1
        field = ".".join(str(p) for p in path) or "(top level)"
        problems.append(f"line {line}: {field}: {message}")

    def unknown_fields(mapping: dict, allowed: set, path: tuple) -> None:
        for key in mapping:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                report(path + (key,), f"unknown field{hint}; allowed: {', '.join(sorted(allowed))}")

    if not isinstance(data, dict):
        report((), "a spec is a YAML mapping with format, title and sections")
        return problems
    unknown_fields(data, TOP_FIELDS, ())
    if data.get("format") != SPEC_FORMAT:
        report(("format",), f"must be {SPEC_FORMAT!r}, found {data.get('format')!r}")
    if not _is_int(data.get("format_version")) or data["format_version"] not in SPEC_VERSIONS:
        report(("format_version",), f"unsupported version {data.get('format_version')!r}; supported: 1")
    if not isinstance(data.get("title"), str) or not data.get("title", "").strip():
        report(("title",), "missing or empty; give the paper a title")
    for name in ("course", "instructions"):
        if name in data and not isinstance(data[name], str):
            report((name,), "must be text")
    if "duration_minutes" in data and not (_is_int(data["duration_minutes"]) and data["duration_minutes"] > 0):
        report(("duration_minutes",), f"must be a positive whole number, found {data['duration_minutes']!r}")
    if "decimal_places" in data and not (_is_int(data["decimal_places"]) and 0 <= data["decimal_places"] <= 6):
        report(("decimal_places",), f"must be a whole number from 0 to 6, found {data['decimal_places']!r}")

    sections = data.get("sections")
    if not isinstance(sections, list) or not sections:
        report(("sections",), "missing or empty; list at least one section with questions")
        return problems
    for s_index, section in enumerate(sections):
        s_path = ("sections", s_index)
        if not isinstance(section, dict):
            report(s_path, "a section is a mapping with title and questions")
            continue
        unknown_fields(section, SECTION_FIELDS, s_path)
        for name in ("title", "instructions"):
            if name in section and not isinstance(section[name], str):
                report(s_path + (name,), "must be text")
        questions = section.get("questions")
        if not isinstance(questions, list) or not questions:
            report(s_path + ("questions",), "missing or empty; list at least one question")
            continue
        for q_index, question in enumerate(questions):
            validate_question(question, s_path + ("questions", q_index), report, unknown_fields)
    return problems


def validate_question(question: object, path: tuple, report, unknown_fields) -> None:
    if not isinstance(question, dict):
        report(path, "a question is a mapping with at least a type")
        return
    if "title" in question and not isinstance(question["title"], str):
        report(path + ("title",), "must be text")
    qtype = question.get("type")
    if not isinstance(qtype, str) or qtype not in QUESTION_TYPES:
        close = difflib.get_close_matches(str(qtype), list(QUESTION_TYPES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        report(path + ("type",), f"unknown question type {qtype!r}{hint}; allowed: {', '.join(QUESTION_TYPES)}")
        return
    qtype_info = QUESTION_TYPES[qtype]
    fields = COMMON_QUESTION_FIELDS | qtype_info.fields | EXTRA_FIELDS.get(qtype, set())
    unknown_fields(question, fields, path)
    # A field this type does not take is reported once, as unknown, and its value is not checked.
    question = {name: value for name, value in question.items() if name in fields}

    part_names = qtype_info.parts
    if qtype == "concept":
        part_names = _validate_concept(question, path, report)
        _reject_short_answer_marks(question, path, report)
    _validate_marks(question, qtype, part_names, path, report)
    _validate_settings(question, path, report)
    _validate_conventions(question, path, report)
    if qtype in network_questions.NETWORK_TYPES:
        for name, message in network_questions.field_problems(question):
            report(path + (name,), message)

    if "parts" in question:
        parts = question["parts"]
        if not isinstance(parts, list) or not parts:
            report(path + ("parts",), f"must list the parts to ask, from: {', '.join(qtype_info.parts)}")
        else:
            for index, part in enumerate(parts):
                if part not in qtype_info.parts:
                    report(path + ("parts", index), f"unknown part {part!r}; allowed: {', '.join(qtype_info.parts)}")

    fixed = question.get("fixed")
    if fixed is not None:
        required = qtype_info.fixed_fields
        if not isinstance(fixed, dict):
            report(path + ("fixed",), f"must be a mapping with {', '.join(required)}")
            return
        for name in required:
            # A fixed training question stops either after a number of merges or at a vocabulary size.
            if qtype == "bpe_train" and name == "merges" and "target_vocab" in fixed:
                continue
            if name not in fixed:
                report(path + ("fixed",), f"missing {name!r}; a fixed {qtype} problem needs {', '.join(required)}")


def _validate_marks(question: dict, qtype: str, part_names, path: tuple, report) -> None:
    marks = question.get("marks", {})
    if not isinstance(marks, dict):
        report(path + ("marks",), "must map part names to marks, e.g. {merges: 4}")
        return
    for part, value in marks.items():
        if part_names is not None and part not in part_names:
            allowed = ", ".join(part_names) or "none"
            report(path + ("marks", part), f"unknown part; parts of this {qtype} question: {allowed}")
        elif not _is_int(value) or value < 0:
            report(path + ("marks", part), f"marks must be a whole number of 0 or more, found {value!r}")


def _validate_settings(question: dict, path: tuple, report) -> None:
    for name in ("words", "merges", "max_count", "new_words", "classes", "inputs", "magnitude",
                 "max_characters", "max_pairs", "options", "count"):
        if name in question and not (_is_int(question[name]) and question[name] >= 1):
            report(path + (name,), f"must be a whole number of 1 or more, found {question[name]!r}")
    for name in ("build_on", "decimal_places"):
        if name in question and not (_is_int(question[name]) and question[name] >= 0):
            report(path + (name,), f"must be a whole number of 0 or more, found {question[name]!r}")
    for name, low, high in RANGES:
        if _is_int(question.get(name)) and question[name] >= 0 and not low <= question[name] <= high:
            report(path + (name,), f"must be from {low} to {high} so the question fits a page, found {question[name]}")
    for name, allowed in CHOICES.items():
        if name in question and question[name] not in allowed:
            report(path + (name,), f"must be one of {', '.join(allowed)}, found {question[name]!r}")


def _validate_conventions(question: dict, path: tuple, report) -> None:
    conventions = question.get("conventions", {})
    if not isinstance(conventions, dict):
        report(path + ("conventions",), "must be a mapping, e.g. {end_of_word: separate}")
        return
    for name, value in conventions.items():
        if name == "min_count":
            if not (_is_int(value) and value >= 1):
                report(path + ("conventions", name), f"must be a whole number of 1 or more, found {value!r}")
        elif name not in CONVENTION_CHOICES:
            close = difflib.get_close_matches(str(name), list(CONVENTION_CHOICES) + ["min_count"], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            report(path + ("conventions", name), f"unknown convention; {hint}allowed: min_count, {', '.join(CONVENTION_CHOICES)}")
        elif value not in CONVENTION_CHOICES[name]:
            report(path + ("conventions", name), f"must be one of {', '.join(CONVENTION_CHOICES[name])}, found {value!r}")


def _validate_concept(question: dict, path: tuple, report) -> tuple[str, ...] | None:
    """Check id, topic and count against the conceptual bank; return the part names the marks may use."""
    from generator.concept_questions import TOPICS, load_bank

    bank = load_bank()
    if ("id" in question) == ("topic" in question):
        report(path, "give either id (one bank question) or topic (with count), not both or neither")
        return None
    if "id" in question:
        if question["id"] not in bank:
            close = difflib.get_close_matches(str(question["id"]), list(bank), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            report(path + ("id",), f"no bank question {question['id']!r}; {hint}ids: {', '.join(bank)}")
            return None
        if "count" in question:
            report(path + ("count",), "count goes with topic; an id asks for exactly one question")
        return (question["id"],)
    topic = question["topic"]
    if topic not in TOPICS:
        report(path + ("topic",), f"must be one of {', '.join(TOPICS)}, found {topic!r}")
        return None
    pool = tuple(qid for qid, item in bank.items() if item["topic"] == topic)
    count = question.get("count", 1)
    if _is_int(count) and count > len(pool):
        report(path + ("count",), f"the bank has {len(pool)} questions on {topic}, so count is at most {len(pool)}")
    return pool


def unequal_draws(spec: Spec) -> list[str]:
    """List the concept entries whose random draws differ in marks, with their line in the spec.

    A batch gives each student their own draw, so such an entry would give students
    papers with different totals. A single paper has one draw, so only a batch checks this.
    """
    from generator.concept_questions import load_bank

    bank = load_bank()
    _, lines = load_yaml_with_lines(spec.path.read_text(encoding="utf-8"), str(spec.path))
    problems = []
    for s_index, section in enumerate(spec.data["sections"]):
        for q_index, question in enumerate(section["questions"]):
            if question["type"] != "concept" or "topic" not in question:
                continue
            pool = [item for item in bank.values() if item["topic"] == question["topic"]]
            if question.get("count", 1) >= len(pool):
                continue  # every student gets the whole pool
            marks = question.get("marks") or {}
            by_marks: dict[int, list[str]] = {}
            for item in pool:
                by_marks.setdefault(_item_marks(item, marks.get(item["id"])), []).append(item["id"])
            if len(by_marks) < 2:
                continue
            path = ("sections", s_index, "questions", q_index, "topic")
            worth = "; ".join(f"{value} mark{'s' if value != 1 else ''}: {', '.join(ids)}"
                              for value, ids in sorted(by_marks.items()))
            problems.append(
                f"line {lines.get(path, 1)}: {'.'.join(map(str, path))}: the {question['topic']} questions in the "
                f"bank are not worth the same ({worth}), so students who draw different ones would get papers "
                "with different totals; in a batch, choose one question by id, or set marks for each "
                "choice, true/false and numeric question so that all are worth the same")
    return problems


def _item_marks(item: dict, override: object) -> int:
    """Return the marks a bank question is worth, with the spec's marks for it where given."""
    if item["kind"] == "short":
        return sum(point["marks"] for point in item["rubric"])
    return int(override) if _is_int(override) else int(item["marks"])


def _reject_short_answer_marks(question: dict, path: tuple, report) -> None:
    """Report marks set for a short-answer bank question, which are always the sum of its rubric points."""
    from generator.concept_questions import load_bank

    marks = question.get("marks")
    if not isinstance(marks, dict):
        return
    bank = load_bank()
    for name in marks:
        item = bank.get(name)
        if item is not None and item["kind"] == "short":
            total = sum(point["marks"] for point in item["rubric"])
            report(path + ("marks", name), f"{name} is a short answer, worth the sum of its rubric points "
                                           f"({total}); its marks cannot be set, so remove this entry")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
