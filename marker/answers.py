"""Load a student's answer file (YAML or JSON) and the key JSON, with caps on size and shape.

An answer file looks like the blank one that `mlexam generate` writes:

    format: mlexam-answers
    format_version: 1
    paper: P-A5020EC4
    student_id: "s123"
    answers:
      q4:
        y: "[0.731, 0.269]"

YAML is read with a safe loader that keeps every plain scalar as text, so "0.731"
reaches the marker as written and is never turned into a binary float.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from generator.errors import InputFileError, yaml_fix
from generator.paper import ANSWERS_FORMAT, ANSWERS_VERSION

KEY_FORMAT = "mlexam-key"
KEY_VERSION = 1
# An answer file for a paper of a few dozen parts is a few kilobytes.
MAX_FILE_BYTES = 1_000_000
# Keys store every tied branch of a BPE question, so they can be larger.
MAX_KEY_BYTES = 20_000_000
# The answer format nests four levels (answers, question, part, matrix row).
MAX_NESTING = 32
# Values after YAML aliases are expanded: an alias bomb exceeds this at once.
MAX_NODES = 100_000

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
ENCODING_FIX = "save the file as UTF-8 text (most editors: Save As, encoding UTF-8)"


@dataclass
class AnswerFile:
    """A student's answers: answers[question id][part name] is the raw YAML/JSON value."""

    path: Path
    format_version: int
    paper: str
    student_id: str
    answers: dict[str, dict[str, object]]
    problems: list[str] = field(default_factory=list)


def load_answers(path: str | os.PathLike, key: dict | None = None) -> AnswerFile:
    """Read and validate an answer file; with a key, list unknown questions and parts as problems."""
    path = Path(path)
    text = read_text_capped(path, MAX_FILE_BYTES)
    duplicates: list[str] = []
    data = _parse(path, text, duplicates)
    if not isinstance(data, dict):
        raise InputFileError(path, [f"the file must be a mapping with format, paper and answers; found {_kind(data)}"])

    _check_format(path, data, ANSWERS_FORMAT, ANSWERS_VERSION)
    answers = data.get("answers")
    if answers is None:
        answers = {}
    if not isinstance(answers, dict):
        raise InputFileError(path, [f"answers must be a mapping from question id to parts; found {_kind(answers)}"])
    for question_id, parts in answers.items():
        if parts is not None and not isinstance(parts, dict):
            raise InputFileError(path, [f"answers.{question_id} must be a mapping from part name to answer; "
                                        f"found {_kind(parts)}"])
    answer_file = AnswerFile(
        path=path,
        format_version=int(data["format_version"]),
        paper=_text_field(data.get("paper")),
        student_id=_text_field(data.get("student_id")),
        answers={str(question_id): dict(parts or {}) for question_id, parts in answers.items()},
    )
    answer_file.problems.extend(duplicates)
    if key is not None:
        answer_file.problems.extend(_problems_against_key(answer_file, key))
    return answer_file


def load_key(path: str | os.PathLike) -> dict:
    """Read the key JSON that `mlexam generate` writes, checking its format and version."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            is_pdf = stream.read(5) == b"%PDF-"
    except OSError:
        is_pdf = False
    if is_pdf:
        raise InputFileError(path, ["this is a PDF, not the key the marker reads; give the key JSON "
                                    "that mlexam generate wrote beside it (*-key.json)"])
    text = read_text_capped(path, MAX_KEY_BYTES)
    try:
        data = _json_loads_shallow(path, text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError) as error:
        if ANSWERS_FORMAT in text[:2000]:
            raise InputFileError(path, ["this is an answer file, not a key; give the key JSON "
                                        "that mlexam generate wrote (*-key.json)"]) from None
        raise InputFileError(path, [f"invalid JSON: {error}"]) from None
    if not isinstance(data, dict):
        raise InputFileError(path, [f"a key must be a JSON object; found {_kind(data)}"])
    _check_format(path, data, KEY_FORMAT, KEY_VERSION)
    if not isinstance(data.get("questions"), list):
        raise InputFileError(path, ["the key has no list of questions"])
    return data


# ---- bytes and text -------------------------------------------------------------------

def read_text_capped(path: Path, max_bytes: int) -> str:
    """Read a UTF-8 (optionally with BOM) or UTF-16 (with BOM) text file of at most max_bytes."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputFileError(path, [f"the file has {size:,} bytes, more than the {max_bytes:,} allowed; "
                                        "is this the right file?"])
        with open(path, "rb") as stream:
            data = stream.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputFileError(path, ["file not found"]) from None
    except IsADirectoryError:
        raise InputFileError(path, ["this is a folder, not a file"]) from None
    except OSError as error:
        raise InputFileError(path, [f"cannot read the file: {error.strerror}"]) from None
    if len(data) > max_bytes:
        raise InputFileError(path, [f"the file has more than the {max_bytes:,} bytes allowed"])
    return decode_text(path, data)


def decode_text(path: Path, data: bytes) -> str:
    encoding = "utf-8"
    for bom, name in _BOMS:
        if data.startswith(bom):
            encoding = name
            break
    if encoding == "utf-8" and b"\x00" in data:
        offset = data.index(b"\x00")
        raise InputFileError(path, [f"a NUL byte at byte offset {offset}: this is not a text file; {ENCODING_FIX}"])
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        raise InputFileError(path, [f"invalid {encoding.upper()} at byte offset {error.start}: "
                                    f"{data[error.start:error.start + 4]!r}; {ENCODING_FIX}"]) from None
    if "\x00" in text:
        raise InputFileError(path, [f"a NUL character at character {text.index(chr(0))}: "
                                    f"this is not a text file; {ENCODING_FIX}"])
    return text


# ---- YAML and JSON --------------------------------------------------------------------

class _TextLoader(yaml.SafeLoader):
    """A safe YAML loader that keeps plain scalars as text and caps nesting depth."""

    depth = 0

    def compose_node(self, parent, index):
        self.depth += 1
        if self.depth > MAX_NESTING:
            mark = self.peek_event().start_mark
            raise _TooDeep(mark.line + 1)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


# Only null stays implicit: 0.731, 1e-3, yes, 2024-01-01 all stay the text that was typed.
_TextLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag == "tag:yaml.org,2002:null"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _FastTextLoader(yaml.CSafeLoader):
    """The same text-keeping loader on libyaml's C parser, for files whose nesting is known to be shallow."""


_FastTextLoader.yaml_implicit_resolvers = _TextLoader.yaml_implicit_resolvers

# Characters that can open a nesting level at the start of a YAML line: indentation and
# the block indicators of sequences, keys and values.
_YAML_FORBIDDEN = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LINE_NESTING = re.compile(r"^[ \t\-?:]*", re.M)


def _is_shallow(text: str) -> bool:
    """Return whether the text cannot nest more than MAX_NESTING levels, by a conservative count.

    Flow brackets count even inside quotes, and every leading space counts as a level, so a
    file that passes is certainly shallow. A file that fails goes to the checking loader.
    """
    depth = deepest = 0
    for character in text:
        if character in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif character in "]}":
            depth -= 1
    if deepest > MAX_NESTING:
        return False
    return max((len(match) for match in _LINE_NESTING.findall(text)), default=0) <= MAX_NESTING


class _TooDeep(Exception):
    def __init__(self, line: int):
        self.line = line


def _parse(path: Path, text: str, duplicates: list[str]) -> object:
    """Parse YAML or JSON; append a note to `duplicates` for each key given twice (the last one is kept)."""
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        def object_without_duplicates(pairs: list[tuple[str, object]]) -> dict:
            seen = set()
            for name, _ in pairs:
                if name in seen:
                    duplicates.append(f"{name!r} is given twice in one object; the last value is used")
                seen.add(name)
            return dict(pairs)

        try:
            return _json_loads_shallow(path, text, parse_float=str, parse_int=str, parse_constant=_reject_constant,
                                       object_pairs_hook=object_without_duplicates)
        except (json.JSONDecodeError, ValueError) as error:
            raise InputFileError(path, [f"invalid JSON: {error}"]) from None
    return _parse_yaml(path, text, duplicates)


def _parse_yaml(path: Path, text: str, duplicates: list[str]) -> object:
    # libyaml's C parser is several times faster, but it nests by recursion in C with no
    # depth cap, so it only reads text that cannot be deep.
    # Text with a character YAML forbids also goes to the checking loader, whose message names the line.
    fast = yaml.__with_libyaml__ and not _YAML_FORBIDDEN.search(text) and _is_shallow(text)
    loader_class = _FastTextLoader if fast else _TextLoader
    try:
        loader = loader_class(text)
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        raise InputFileError(path, [f"line {line}: the control character {chr(error.character)!r} is not "
                                    f"allowed in YAML; {ENCODING_FIX}"]) from None
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        # Only an anchor (&) lets aliases share a node, so text without one is a tree of nodes
        # that the duplicate-key walk counts, and the expanded-size walk is skipped.
        if "&" in text:
            _check_expanded_size(path, root)
        duplicates.extend(_duplicate_keys(path, root))
        return loader.construct_document(root)
    except _TooDeep as error:
        raise InputFileError(path, [f"line {error.line}: nested more than {MAX_NESTING} levels deep"]) from None
    except yaml.MarkedYAMLError as error:
        line = f"line {error.problem_mark.line + 1}: " if error.problem_mark else ""
        problem = error.problem or error.context
        raise InputFileError(path, [f"{line}invalid YAML: {problem}; {yaml_fix(str(problem), text)}"]) from None
    except yaml.YAMLError as error:
        raise InputFileError(path, [f"invalid YAML: {error}"]) from None
    finally:
        loader.dispose()


def _check_expanded_size(path: Path, root: yaml.Node) -> None:
    """Count the values that aliases expand to, without expanding them; reject a cycle."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if children_done:
            in_progress.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[id(node)] > MAX_NODES:
                raise InputFileError(path, [f"line {node.start_mark.line + 1}: YAML aliases expand to more than "
                                            f"{MAX_NODES:,} values; write the answers out without & and *"])
            continue
        if id(node) in in_progress:
            raise InputFileError(path, [f"line {node.start_mark.line + 1}: a YAML alias refers to itself"])
        in_progress.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in in_progress and id(child) not in sizes:
                raise InputFileError(path, [f"line {child.start_mark.line + 1}: a YAML alias refers to itself"])
            stack.append((child, False))


def _duplicate_keys(path: Path, root: yaml.Node) -> list[str]:
    """Return a note for each mapping key given twice. Raise InputFileError past MAX_NODES distinct nodes."""
    notes, seen_nodes, stack = [], set(), [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if len(seen_nodes) > MAX_NODES:
            raise InputFileError(path, [f"line {node.start_mark.line + 1}: more than {MAX_NODES:,} values "
                                        "in one file; is this the right file?"])
        if isinstance(node, yaml.MappingNode):
            names = set()
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    if key_node.value in names:
                        notes.append(f"line {key_node.start_mark.line + 1}: {key_node.value!r} is given twice "
                                     "in one mapping; the last value is used")
                    names.add(key_node.value)
                stack.append(key_node)
                stack.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return notes


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def _json_loads_shallow(path: Path, text: str, **options) -> object:
    """Parse JSON with json.loads, raising InputFileError when it nests more than MAX_NESTING levels.

    CPython's C json parser recurses once per level, but it counts the levels against
    the recursion limit and raises RecursionError (tested on 3.11 with 10 million levels),
    so deep text cannot overflow the C stack. The parsed value is then checked level by
    level. Only rejected text is scanned character by character, for the line number.
    """
    try:
        data = json.loads(text, **options)
    except RecursionError:
        _check_json_nesting(path, text)
        raise InputFileError(path, [f"nested more than {MAX_NESTING} levels deep"]) from None
    except ValueError:
        # A file that is both invalid and too deep is reported as too deep.
        _check_json_nesting(path, text)
        raise
    if _nesting_exceeds(data, MAX_NESTING):
        _check_json_nesting(path, text)
        raise InputFileError(path, [f"nested more than {MAX_NESTING} levels deep"])
    return data


def _nesting_exceeds(data: object, limit: int) -> bool:
    """Return whether parsed JSON has more than `limit` levels of objects and arrays."""
    level = [data] if isinstance(data, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        deeper = []
        for container in level:
            for value in (container.values() if isinstance(container, dict) else container):
                if isinstance(value, (dict, list)):
                    deeper.append(value)
        level = deeper
    return False


def _check_json_nesting(path: Path, text: str) -> None:
    """Raise InputFileError naming the line where the JSON text first nests deeper than MAX_NESTING."""
    depth, in_string, escaped = 0, False, False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_NESTING:
                line = text.count("\n", 0, index) + 1
                raise InputFileError(path, [f"line {line}: nested more than {MAX_NESTING} levels deep"])
        elif char in "]}":
            depth -= 1


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number an answer can have")


# ---- structure ------------------------------------------------------------------------

def _check_format(path: Path, data: dict, expected_format: str, expected_version: int) -> None:
    found = data.get("format")
    if found != expected_format:
        raise InputFileError(path, [f"format is {found!r}, expected {expected_format!r}; "
                                    f"is this the right file?"])
    version = data.get("format_version")
    if str(version).strip() != str(expected_version):
        raise InputFileError(path, [f"format_version is {version!r}; this mlexam reads version "
                                    f"{expected_version}. Use the mlexam version that wrote the file, "
                                    "or write the file again with this one"])
    data["format_version"] = expected_version


def _problems_against_key(answer_file: AnswerFile, key: dict) -> list[str]:
    problems = []
    if key.get("paper_code") and answer_file.paper and answer_file.paper != key["paper_code"]:
        problems.append(f"paper is {answer_file.paper!r} but the key is for {key['paper_code']!r}")
    parts_by_question = {question["id"]: [part["name"] for part in question.get("parts", [])]
                         for question in key.get("questions", [])}
    for question_id, parts in answer_file.answers.items():
        if question_id not in parts_by_question:
            known = ", ".join(parts_by_question) or "none"
            problems.append(f"answers.{question_id}: no question {question_id!r} on this paper (questions: {known})")
            continue
        for part_name in parts:
            if part_name not in parts_by_question[question_id]:
                known = ", ".join(parts_by_question[question_id])
                problems.append(f"answers.{question_id}.{part_name}: no part {part_name!r} in "
                                f"{question_id} (parts: {known})")
    return problems


def _text_field(value: object) -> str:
    return "" if value is None else str(value)


def _kind(value: object) -> str:
    names = {dict: "a mapping", list: "a list", str: "text", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)
