"""Loading answer files and keys: formats, encodings and files built to exhaust the loader."""

from __future__ import annotations

import codecs
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.errors import InputFileError
from generator.paper import build_paper, write_paper
from generator.spec import bundled_spec_path, load_spec
from marker.answers import MAX_FILE_BYTES, AnswerFile, load_answers, load_key

ANSWERS_YAML = """\
format: mlexam-answers
format_version: 1
paper: P-TEST
student_id: 00123
answers:
  q4:
    y: [0.731, 0.269]
    L: 0.313
    z: "[1, 0]"
    flag: yes
"""


@pytest.fixture(scope="module")
def practice_files(tmp_path_factory):
    paper = build_paper(load_spec(bundled_spec_path()), 1)
    return write_paper(paper, tmp_path_factory.mktemp("practice"))


def write_bytes(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_yaml_scalars_stay_text(tmp_path):
    answers = load_answers(write_bytes(tmp_path, "a.yaml", ANSWERS_YAML.encode()))
    assert isinstance(answers, AnswerFile)
    assert answers.format_version == 1
    assert answers.paper == "P-TEST"
    assert answers.student_id == "00123"
    assert answers.answers == {"q4": {"y": ["0.731", "0.269"], "L": "0.313", "z": "[1, 0]", "flag": "yes"}}
    assert answers.problems == []


def test_json_same_structure(tmp_path):
    data = {"format": "mlexam-answers", "format_version": 1, "paper": "P-TEST", "student_id": "s1",
            "answers": {"q4": {"y": [0.731, 0.269], "L": "0.313"}}}
    answers = load_answers(write_bytes(tmp_path, "a.json", json.dumps(data).encode()))
    assert answers.answers == {"q4": {"y": ["0.731", "0.269"], "L": "0.313"}}
    assert answers.student_id == "s1"


def test_json_nan_rejected(tmp_path):
    text = '{"format": "mlexam-answers", "format_version": 1, "answers": {"q4": {"L": NaN}}}'
    with pytest.raises(InputFileError, match="NaN is not a number"):
        load_answers(write_bytes(tmp_path, "a.json", text.encode()))


@pytest.mark.parametrize("encoding, bom", [("utf-8", codecs.BOM_UTF8), ("utf-16-le", codecs.BOM_UTF16_LE),
                                           ("utf-16-be", codecs.BOM_UTF16_BE)])
def test_byte_order_marks_read(tmp_path, encoding, bom):
    text = ANSWERS_YAML.replace("0.313", "\u22120.313")
    answers = load_answers(write_bytes(tmp_path, "a.yaml", bom + text.encode(encoding)))
    assert answers.answers["q4"]["L"] == "\u22120.313"
    assert answers.paper == "P-TEST"


def test_invalid_utf8_names_offset(tmp_path):
    data = ANSWERS_YAML.encode().replace(b"P-TEST", b"P-T\xe9ST")
    with pytest.raises(InputFileError) as caught:
        load_answers(write_bytes(tmp_path, "a.yaml", data))
    message = str(caught.value)
    offset = data.index(b"\xe9")
    assert f"byte offset {offset}" in message
    assert "save the file as UTF-8" in message
    assert str(tmp_path / "a.yaml") in message


def test_nul_bytes_rejected(tmp_path):
    data = ANSWERS_YAML.encode()[:40] + b"\x00\x00" + ANSWERS_YAML.encode()[40:]
    with pytest.raises(InputFileError, match="NUL byte at byte offset 40"):
        load_answers(write_bytes(tmp_path, "a.yaml", data))


def test_binary_file_rejected(tmp_path):
    with pytest.raises(InputFileError, match="byte offset 0"):
        load_answers(write_bytes(tmp_path, "a.yaml", bytes(range(128, 256)) * 4))


def test_alias_bomb_rejected(tmp_path):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 10):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 9)}]")
    text = "format: mlexam-answers\nformat_version: 1\n" + "\n".join(lines) + "\nanswers: {q1: {x: *a9}}\n"
    with pytest.raises(InputFileError, match="aliases expand to more than 100,000 values"):
        load_answers(write_bytes(tmp_path, "bomb.yaml", text.encode()))


def test_small_alias_allowed(tmp_path):
    text = ANSWERS_YAML + "  q5:\n    y: &same [0.1, 0.9]\n    b: *same\n"
    answers = load_answers(write_bytes(tmp_path, "a.yaml", text.encode()))
    assert answers.answers["q5"] == {"y": ["0.1", "0.9"], "b": ["0.1", "0.9"]}


def test_recursive_alias_rejected(tmp_path):
    text = "format: mlexam-answers\nformat_version: 1\nanswers: &loop {q1: *loop}\n"
    with pytest.raises(InputFileError, match="refers to itself"):
        load_answers(write_bytes(tmp_path, "a.yaml", text.encode()))


def test_huge_file_rejected_unread(tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as stream:
        stream.write(ANSWERS_YAML.encode())
        stream.write(b"# " + b"x" * (50 * 1024 * 1024) + b"\n")
    with pytest.raises(InputFileError) as caught:
        load_answers(path)
    assert f"more than the {MAX_FILE_BYTES:,} allowed" in str(caught.value)


@pytest.mark.parametrize("name, text", [
    ("flow.yaml", "format: mlexam-answers\nformat_version: 1\nanswers: " + "[" * 10_000 + "]" * 10_000 + "\n"),
    ("block.yaml", "format: mlexam-answers\nformat_version: 1\nanswers:\n" + "- " * 10_000 + "1\n"),
    ("deep.json", '{"format": "mlexam-answers", "format_version": 1, "answers": '
     + "[" * 10_000 + "]" * 10_000 + "}"),
])
def test_deep_nesting_rejected(tmp_path, name, text):
    with pytest.raises(InputFileError, match="nested more than 32 levels deep"):
        load_answers(write_bytes(tmp_path, name, text.encode()))


@pytest.mark.parametrize("replace, message", [
    ("format_version: 1", "format_version is '2'; this mlexam reads version 1"),
    ("format: mlexam-answers", "format is 'mlexam-key', expected 'mlexam-answers'"),
])
def test_wrong_format_rejected(tmp_path, replace, message):
    text = ANSWERS_YAML.replace("format_version: 1", "format_version: 2") if "version" in replace \
        else ANSWERS_YAML.replace("format: mlexam-answers", "format: mlexam-key")
    with pytest.raises(InputFileError) as caught:
        load_answers(write_bytes(tmp_path, "a.yaml", text.encode()))
    assert message in str(caught.value)


@pytest.mark.parametrize("text, message", [
    ("- 1\n- 2\n", "must be a mapping"),
    ("format: mlexam-answers\nformat_version: 1\nanswers: [1, 2]\n", "answers must be a mapping"),
    ("format: mlexam-answers\nformat_version: 1\nanswers:\n  q1: 3\n", "answers.q1 must be a mapping"),
    ("format: mlexam-answers\nformat_version: 1\nanswers: {q1: [\n", "line 4: invalid YAML"),
])
def test_bad_structure_rejected(tmp_path, text, message):
    with pytest.raises(InputFileError, match=message):
        load_answers(write_bytes(tmp_path, "a.yaml", text.encode()))


def test_missing_file_rejected(tmp_path):
    with pytest.raises(InputFileError, match="file not found"):
        load_answers(tmp_path / "nothing.yaml")


def test_unknown_ids_listed_with_key(tmp_path, practice_files):
    key = load_key(practice_files["key"])
    text = ANSWERS_YAML.replace("  q4:\n", "  q9:\n    y: 1\n  q4:\n")
    answers = load_answers(write_bytes(tmp_path, "a.yaml", text.encode()), key)
    assert answers.problems == [
        f"paper is 'P-TEST' but the key is for '{key['paper_code']}'",
        "answers.q9: no question 'q9' on this paper (questions: q1, q2, q3, q4, q5)",
        "answers.q4.flag: no part 'flag' in q4 (parts: z, y, L, delta, dL_dW, dL_db, dL_dx, W_new, b_new)",
    ]


def test_blank_file_from_generate_loads(practice_files):
    answers = load_answers(practice_files["answers"], load_key(practice_files["key"]))
    assert answers.problems == []
    assert sorted(answers.answers) == ["q1", "q2", "q3", "q4", "q5"]
    assert answers.answers["q4"]["y"] == ""
    assert answers.answers["q1"]["merges"] == ["", "", "", ""]


def test_key_format_checked(tmp_path, practice_files):
    key = load_key(practice_files["key"])
    assert key["format"] == "mlexam-key"
    data = json.loads(practice_files["key"].read_text(encoding="utf-8"))
    data["format_version"] = 99
    with pytest.raises(InputFileError, match="format_version is 99"):
        load_key(write_bytes(tmp_path, "k.json", json.dumps(data).encode()))
    with pytest.raises(InputFileError, match="this is an answer file, not a key"):
        load_key(practice_files["answers"])
    data["format_version"] = 1
    data["format"] = "mlexam-answers"
    with pytest.raises(InputFileError, match="format is 'mlexam-answers', expected 'mlexam-key'"):
        load_key(write_bytes(tmp_path, "k.json", json.dumps(data).encode()))


def test_duplicate_keys_listed(tmp_path):
    text = ANSWERS_YAML + "    L: 0.5\n"
    answers = load_answers(write_bytes(tmp_path, "a.yaml", text.encode()))
    assert answers.answers["q4"]["L"] == "0.5"
    assert answers.problems == ["line 11: 'L' is given twice in one mapping; the last value is used"]
    data = '{"format": "mlexam-answers", "format_version": 1, "answers": {"q4": {"L": "1", "L": "2"}}}'
    answers = load_answers(write_bytes(tmp_path, "a.json", data.encode()))
    assert answers.answers["q4"]["L"] == "2"
    assert answers.problems == ["'L' is given twice in one object; the last value is used"]


@pytest.mark.parametrize("value, message", [
    ("!!python/object/apply:os.system ['echo hi']", "invalid YAML"),
    ("!!python/name:os.system", "invalid YAML"),
])
def test_python_tags_rejected(tmp_path, capfd, value, message):
    text = f"format: mlexam-answers\nformat_version: 1\nanswers:\n  q4:\n    L: {value}\n"
    with pytest.raises(InputFileError, match=message):
        load_answers(write_bytes(tmp_path, "a.yaml", text.encode()))
    assert capfd.readouterr().out == ""


@settings(max_examples=150, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=300),
                 st.text(alphabet="format: mlexam-answers_version1\n -[]{}&*!,'\"q4yL0.7#", max_size=200)
                 .map(lambda text: text.encode())))
def test_arbitrary_bytes_raise_only_input_errors(tmp_path, data):
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    try:
        answers = load_answers(path)
    except InputFileError as error:
        assert str(error).startswith(str(path))
        return
    assert isinstance(answers.answers, dict)


def test_control_character_rejected(tmp_path):
    data = ANSWERS_YAML.replace("P-TEST", "P-\x07TEST").encode()
    with pytest.raises(InputFileError, match=r"line 3: the control character '\\x07' is not allowed"):
        load_answers(write_bytes(tmp_path, "a.yaml", data))


def nested_answers_json(levels: int) -> str:
    """Return a JSON answer file whose objects and arrays nest `levels` deep in all."""
    # The top object, "answers" and "q1" are three levels; the rest are arrays.
    return ('{"format": "mlexam-answers", "format_version": 1,\n"answers": {"q1": {"x": '
            + "[" * (levels - 3) + '"1"' + "]" * (levels - 3) + "}}}")


def test_json_nesting_limit_exact(tmp_path):
    answers = load_answers(write_bytes(tmp_path, "a.json", nested_answers_json(32).encode()))
    value = answers.answers["q1"]["x"]
    for _ in range(28):
        value = value[0]
    assert value == ["1"]
    with pytest.raises(InputFileError, match="line 2: nested more than 32 levels deep"):
        load_answers(write_bytes(tmp_path, "b.json", nested_answers_json(33).encode()))


def test_json_brackets_in_strings_not_counted(tmp_path):
    data = {"format": "mlexam-answers", "format_version": 1, "answers": {"q1": {"x": "[" * 100 + "{" * 100}}}
    answers = load_answers(write_bytes(tmp_path, "a.json", json.dumps(data).encode()))
    assert answers.answers["q1"]["x"] == "[" * 100 + "{" * 100


def test_invalid_deep_json_reported_as_deep(tmp_path):
    text = nested_answers_json(40).replace('"1"', '"1",,')
    with pytest.raises(InputFileError, match="line 2: nested more than 32 levels deep"):
        load_answers(write_bytes(tmp_path, "a.json", text.encode()))


@pytest.mark.parametrize("levels", [40, 100_000])
def test_deep_key_rejected_with_line(tmp_path, practice_files, levels):
    """A key edited by hand to nest too deep names its line, both below and above the recursion limit."""
    data = json.loads(practice_files["key"].read_text(encoding="utf-8"))
    text = json.dumps(data, indent=1).replace('"questions": [', '"deep": ' + "[" * levels + "]" * levels
                                               + ',\n "questions": [', 1)
    line = text[:text.index('"deep"')].count("\n") + 1
    with pytest.raises(InputFileError) as raised:
        load_key(write_bytes(tmp_path, "k.json", text.encode()))
    message = str(raised.value)
    assert message.startswith(str(tmp_path / "k.json"))
    assert f"line {line}: nested more than 32 levels deep" in message


def test_many_values_without_aliases_rejected(tmp_path):
    values = ", ".join(["1"] * 100_000)
    text = f"format: mlexam-answers\nformat_version: 1\nanswers:\n  q1:\n    x: [{values}]\n"
    with pytest.raises(InputFileError, match="line 5: more than 100,000 values in one file"):
        load_answers(write_bytes(tmp_path, "a.yaml", text.encode()))



def test_pdf_given_as_key_names_json(tmp_path):
    pdf = tmp_path / "practice-1-key.pdf"
    pdf.write_bytes(b"%PDF-1.7\n%\x00\x01binary")
    with pytest.raises(InputFileError) as raised:
        load_key(pdf)
    assert "this is a PDF, not the key the marker reads" in str(raised.value)
    assert "*-key.json" in str(raised.value)


@pytest.mark.parametrize("text, fix", [
    ("format: mlexam-answers\nformat_version: 1\nanswers:\n  q4:\n\ty: 1\n", "indent with spaces, not tabs"),
    ("format: mlexam-answers\nformat_version: 1\nanswers:\n  q4: y: 0.731\n", 'put double quotes around a value that contains ": "'),
    ("format: mlexam-answers\nformat_version: 1\nanswers: {q1: [\n", "check the indentation and quotes on that line"),
])
def test_invalid_yaml_names_fix(tmp_path, text, fix):
    with pytest.raises(InputFileError) as raised:
        load_answers(write_bytes(tmp_path, "a.yaml", text.encode()))
    assert "invalid YAML" in str(raised.value)
    assert fix in str(raised.value)
