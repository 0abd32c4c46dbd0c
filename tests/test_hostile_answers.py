"""Answer files and values written to break the marker get a clear result and run nothing.

Each value case puts one hostile value into an otherwise correct answer file and
checks the verdict of that part: invalid (with a reason), or the right verdict for
odd but valid values such as 10^400 and -0. Every other part must stay correct, no
file may appear and nothing may be printed. Each file case is a whole answer file
that the loader must reject with its reason, or read (UTF-16 with a byte-order mark).
A sample runs through `mlexam mark` as well, and after the whole table a normal
file still marks at full marks in the same process.
"""

from __future__ import annotations

import codecs
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from generator.errors import InputFileError
from generator.paper import build_paper
from generator.spec import load_spec
from hostile.answers import answer_file_data, expected_answers, write_answer_file
from hostile.papers import write_spec
from marker.answers import load_answers
from marker.core import mark_submission
from marker.report import Verdict

PWNED = "PWNED"
SHELL = f"touch {PWNED}"

# q1 is the course's backpropagation example (z = [1, 0], y = [e/(1+e), 1/(1+e)]),
# q2 the course's BPE example, q3 a random encoding question.
EXAM = {
    "course": "Course", "instructions": "Answer every question.", "duration_minutes": 30,
    "sections": [{"questions": [
        {"type": "backprop_softmax", "fixed": {"W": [[1, 0], [2, -1]], "x": [1, 2], "b": [0, 0], "t": [1, 0]}},
        {"type": "bpe_train", "fixed": {"corpus": "low lowish", "merges": 4}},
        {"type": "bpe_encode"},
    ]}],
}

CODE = [
    ("import call", "q1.L", f"__import__('os').system('{SHELL}')"),
    ("print", "q1.L", "print(1)"),
    ("lambda", "q1.L", "(lambda: 1)()"),
    ("exec", "q1.L", f"exec(\"import os; os.system('{SHELL}')\")"),
    ("eval", "q1.L", "eval('1+1')"),
    ("open", "q1.L", "open('/etc/passwd').read()"),
    ("class walk", "q1.L", "().__class__.__bases__[0].__subclasses__()"),
    ("f-string", "q1.L", f"f\"{{__import__('os').system('{SHELL}')}}\""),
    ("sympy function", "q1.L", "Function('f')(1)"),
    ("sympy symbol", "q1.L", "Symbol('x')"),
    ("shell substitution", "q1.L", f"$({SHELL})"),
    ("backticks", "q1.L", f"`{SHELL}`"),
    ("template", "q1.L", "{{ 7*7 }}"),
    ("html", "q1.L", "<script>alert(1)</script>"),
    ("attribute", "q1.L", "e.__class__"),
    ("code in vector", "q1.y", [f"__import__('os').system('{SHELL}')", "0.269"]),
    ("code in matrix", "q1.dL_dW", [["exec('1')", "0"], ["0", "0"]]),
    ("code as merge", "q2.merges", [f"__import__('os').system('{SHELL}')"] * 4),
    ("code as tokens", "q2.segmentation", {"low": f"$({SHELL})", "lowish": "`id`"}),
]

HUGE = [
    ("power tower", "q1.L", "9**9**9"),
    ("caret tower", "q1.L", "29^11^7"),
    ("ten tower", "q1.L", "10^10^10"),
    ("factorial", "q1.L", "1000!"),
    ("exp tower", "q1.L", "exp(exp(100))"),
    ("huge literal exponent", "q1.L", "1e999999999"),
    ("huge integer literal", "q1.L", "9" * 5000),
    ("100k expression", "q1.L", "1+" * 50_000 + "1"),
    ("deep parentheses", "q1.L", "(" * 900 + "1" + ")" * 900),
    ("deep function calls", "q1.L", "exp(" * 500 + "0" + ")" * 500),
    ("huge root", "q1.L", "2^(1/1000001)"),
    ("division by zero", "q1.L", "1/0"),
    ("zero power zero", "q1.L", "0^0"),
    ("log of zero", "q1.L", "log(0)"),
    ("square root of -1", "q1.L", "sqrt(-1)"),
    ("cube root of -8", "q1.L", "(-8)^(1/3)"),
    # Lists that fit in the answer file's size cap but are far longer than any answer.
    ("huge vector", "q1.y", ["0.5"] * 20_000),
    ("huge merge list", "q2.merges", ["l o"] * 20_000),
    ("huge segmentation", "q2.segmentation", {"low": "l o w </w> " * 20_000, "lowish": "x " * 50_000}),
]

WRONG_TYPES = [
    ("dict for matrix", "q1.dL_dW", {"a": 1, "b": 2}),
    ("letters for matrix", "q1.dL_dW", "abc def; ghi jkl"),
    ("bool for matrix", "q1.dL_dW", True),
    ("ragged matrix", "q1.dL_dW", [["1", "2"], ["3"]]),
    ("triple nesting", "q1.dL_dW", [[["1"]], [["2"]]]),
    ("null entry", "q1.dL_dW", [[None, "0"], ["0", "0"]]),
    ("dict for scalar", "q1.L", {"value": "0.313"}),
    ("list for scalar", "q1.L", ["0.313"]),
    ("decimal comma", "q1.L", "0,313"),
    ("zero-width space", "q1.L", "0.3\u200b13"),
    ("right-to-left override", "q1.L", "\u202e0.313"),
    ("emoji", "q1.L", "0.313 🙂"),
    ("number for merges", "q2.merges", 42),
    ("dicts in merges", "q2.merges", [{"l": "o"}] * 4),
    ("list for segmentation", "q2.segmentation", ["low"]),
    ("nested segmentation", "q2.segmentation", {"low": {"a": "b"}, "lowish": ["x"]}),
    ("path as tokens", "q2.segmentation", {"low": "../../etc/passwd", "lowish": "/etc/shadow"}),
]

NOT_NUMBERS = [
    ("nan", "q1.L", "nan"),
    ("yaml nan", "q1.L", ".nan"),
    ("inf", "q1.L", "inf"),
    ("yaml minus infinity", "q1.L", "-.inf"),
    ("Infinity", "q1.L", "Infinity"),
    ("NaN in vector", "q1.y", ["NaN", "0.269"]),
    ("float nan", "q1.L", float("nan")),
    ("float infinity", "q1.L", float("inf")),
]

INVALID_CASES = CODE + HUGE + WRONG_TYPES + NOT_NUMBERS

# Odd values that can be read, with the verdict they must get.
VALID_CASES = [
    ("ten to the 400", "q1.L", "10^400", Verdict.WRONG),
    ("tiny literal", "q1.L", "1e-400", Verdict.WRONG),
    ("exp 1000", "q1.L", "exp(1000)", Verdict.WRONG),
    ("negative zero", "q1.z", ["1", "-0"], Verdict.CORRECT),
    ("unicode minus zero", "q1.z", ["1", "\u22120.0"], None),
    ("exact loss", "q1.L", "log(1 + e^-1)", Verdict.CORRECT),
    ("30 parentheses", "q1.L", "(" * 30 + "log(exp(-1) + 1)" + ")" * 30, Verdict.CORRECT),
    ("rows form", "q1.dL_dW", "-1/(1+e) -2/(1+e); 1/(1+e) 2/(1+e)", Verdict.CORRECT),
    ("transposed gradient", "q1.dL_dW", "-1/(1+e) 1/(1+e); -2/(1+e) 2/(1+e)", Verdict.WRONG),
    ("sixty digits", "q1.L", "0." + "3" * 60, Verdict.WRONG),
    # Python reads every Unicode decimal digit, so fullwidth 0.313 is the number 0.313.
    ("fullwidth digits", "q1.L", "０.３１３", None),
]


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("hostile-key")
    return json.loads(build_paper(load_spec(write_spec(folder, EXAM, name="exam")), 11).key_json())


@pytest.fixture
def quiet_folder(tmp_path, monkeypatch, capfd):
    """Run in an empty folder and yield a check that nothing was written or printed there."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)

    def check(*allowed: str) -> None:
        captured = capfd.readouterr()
        assert captured.out == ""
        assert PWNED not in captured.err
        assert sorted(path.name for path in work.iterdir()) == sorted(allowed)
        assert not (Path.home() / PWNED).exists()
        assert not (Path(__file__).resolve().parent.parent / PWNED).exists()

    return work, check


def with_part(key: dict, part_id: str, value: object) -> dict:
    answers = expected_answers(key)
    question_id, name = part_id.split(".")
    answers[question_id][name] = value
    return answers


def mark_file(path: Path, key: dict):
    return mark_submission(key, load_answers(path, key))


def assert_others_correct(report, part_id: str) -> None:
    for result in report.parts:
        if result.id != part_id:
            assert result.marks == result.maximum, (result.id, result.verdict, result.feedback)


@pytest.mark.parametrize("case, part_id, value", INVALID_CASES, ids=[case[0] for case in INVALID_CASES])
def test_hostile_value_is_invalid(key, quiet_folder, case, part_id, value):
    work, check = quiet_folder
    path = write_answer_file(work / "answers.yaml", key, with_part(key, part_id, value))

    report = mark_file(path, key)

    result = report.part(part_id)
    if part_id.startswith("q2."):
        # Any text with one space is two BPE symbols, so a code string can be a merge that is wrong.
        assert result.verdict in (Verdict.INVALID, Verdict.WRONG), (result.verdict, result.feedback)
    else:
        assert result.verdict == Verdict.INVALID, (result.verdict, result.feedback)
    assert result.marks == 0
    assert len(result.feedback) > 10
    assert "Traceback" not in result.feedback
    assert_others_correct(report, part_id)
    check("answers.yaml")


@pytest.mark.parametrize("case, part_id, value, verdict", VALID_CASES, ids=[case[0] for case in VALID_CASES])
def test_odd_valid_value_gets_verdict(key, quiet_folder, case, part_id, value, verdict):
    work, check = quiet_folder
    path = write_answer_file(work / "answers.yaml", key, with_part(key, part_id, value))

    report = mark_file(path, key)

    result = report.part(part_id)
    if verdict is None:
        assert result.verdict in (Verdict.CORRECT, Verdict.WITHIN_TOLERANCE), result.feedback
    else:
        assert result.verdict == verdict, result.feedback
    assert_others_correct(report, part_id)
    check("answers.yaml")


# Whole files that the loader must reject, each with the words its message must contain.

def yaml_tag_file(key: dict, tag_text: str) -> str:
    text = yaml.safe_dump(answer_file_data(key), sort_keys=False, width=10_000)
    return text.replace("  q1:\n", f"  q1:\n    L: {tag_text}\n", 1).replace("    L: log", "    L0: log", 1)


def alias_bomb(key: dict) -> str:
    lines = ["format: mlexam-answers", "format_version: 1", f"paper: {key['paper_code']}", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    lines.append("answers: {q1: {L: *a8}}")
    return "\n".join(lines) + "\n"


def bad_files(key: dict) -> list[tuple[str, bytes, str]]:
    """(case, file bytes, a word the error must contain). The 50 MB file is made in the test."""
    good = yaml.safe_dump(answer_file_data(key), sort_keys=False, width=10_000, allow_unicode=True)
    return [
        ("python apply tag", yaml_tag_file(key, f"!!python/object/apply:os.system ['{SHELL}']").encode(), "line"),
        ("python name tag", yaml_tag_file(key, "!!python/name:os.system").encode(), "line"),
        ("python new tag", yaml_tag_file(key, "!!python/object/new:os.system ['id']").encode(), "line"),
        ("deep yaml", ("format: mlexam-answers\nanswers: " + "[" * 10_000 + "]" * 10_000 + "\n").encode(), "nested"),
        ("deep yaml blocks", ("answers:\n" + "".join(" " * i + "- \n" for i in range(1, 300))).encode(), "nested"),
        ("deep json", ('{"answers": ' + "[" * 10_000 + "]" * 10_000 + "}").encode(), "nested"),
        ("alias bomb", alias_bomb(key).encode(), "alias"),
        ("self alias", b"format: mlexam-answers\nanswers: &a {q1: *a}\n", "alias"),
        ("invalid utf-8", good.encode("utf-8").replace(b"s0001", b"s\xff\xfe01"), "UTF-8"),
        ("nul bytes", good.encode("utf-8").replace(b"s0001", b"s\x0001"), "NUL"),
        ("binary", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "UTF-8"),
        ("json nan", json.dumps(answer_file_data(key)).replace('"s0001"', "NaN").encode(), "NaN"),
        ("answers list", b"format: mlexam-answers\nformat_version: 1\nanswers: [1, 2]\n", "answers"),
        ("question list", b"format: mlexam-answers\nformat_version: 1\nanswers: {q1: [1, 2]}\n", "q1"),
        ("not a mapping", b"- just\n- a list\n", "mapping"),
        ("key instead", json.dumps(key).encode(), "format"),
        ("unknown version", good.replace("format_version: 1", "format_version: 99").encode(), "version"),
        ("tabs", b"format: mlexam-answers\nanswers:\n\tq1: {}\n", "line"),
    ]


def test_hostile_files_rejected(key, quiet_folder):
    work, check = quiet_folder
    names = []
    for case, data, word in bad_files(key):
        name = case.replace(" ", "-") + (".json" if "json" in case or case == "key instead" else ".yaml")
        path = work / name
        path.write_bytes(data)
        names.append(name)

        with pytest.raises(InputFileError) as raised:
            load_answers(path, key)

        message = str(raised.value)
        assert str(path) in message, case
        assert word.lower() in message.lower(), (case, message)
        assert "Traceback" not in message, case
    check(*names)


def test_fifty_megabyte_file_rejected(key, tmp_path):
    path = tmp_path / "big.yaml"
    text = yaml.safe_dump(answer_file_data(key), sort_keys=False, width=10_000)
    with path.open("w", encoding="utf-8") as stream:
        stream.write(text)
        stream.write("# " + "x" * 1000 + "\n")
        stream.seek(50 * 1024 * 1024)
        stream.write("\n")

    with pytest.raises(InputFileError) as raised:
        load_answers(path, key)

    assert "bytes" in str(raised.value)


def test_long_value_under_size_cap_is_invalid(key, tmp_path):
    """A 900 kB answer fits the file cap but not the answer cap, so only its part is invalid."""
    path = write_answer_file(tmp_path / "long.yaml", key, with_part(key, "q1.L", "1" * 900_000))

    report = mark_file(path, key)

    assert report.part("q1.L").verdict == Verdict.INVALID
    assert_others_correct(report, "q1.L")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "utf-16-be"])
def test_byte_order_mark_files_read(key, tmp_path, encoding):
    text = yaml.safe_dump(answer_file_data(key), sort_keys=False, width=10_000, allow_unicode=True)
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = codecs.BOM_UTF16_BE + data
    path = tmp_path / "answers.yaml"
    path.write_bytes(data)

    report = mark_file(path, key)

    assert report.total == report.maximum
    assert report.student_id == "s0001"


def test_windows_line_endings_read(key, tmp_path):
    text = yaml.safe_dump(answer_file_data(key), sort_keys=False, width=10_000)
    path = tmp_path / "answers.yaml"
    path.write_bytes(text.replace("\n", "\r\n").encode())

    assert mark_file(path, key).total == mark_file(write_answer_file(tmp_path / "plain.yaml", key), key).maximum


def test_marker_healthy_after_table(key, tmp_path):
    """After every hostile case above in this process, a normal file still marks at full marks."""
    for case, part_id, value in INVALID_CASES[::7]:
        mark_file(write_answer_file(tmp_path / "hostile.yaml", key, with_part(key, part_id, value)), key)

    report = mark_file(write_answer_file(tmp_path / "normal.yaml", key), key)

    assert report.total == report.maximum
    assert all(result.verdict == Verdict.CORRECT for result in report.parts)
    assert sys.getrecursionlimit() >= 1000


# The same through the command line, for a sample.

def run_mark(key_path: Path, answers_path: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlexam", "mark", str(key_path), str(answers_path), "--json"],
                          cwd=cwd, capture_output=True, text=True)


@pytest.fixture
def cli_folder(tmp_path, key):
    key_path = tmp_path / "key.json"
    key_path.write_text(json.dumps(key), encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    return key_path, work


def test_cli_marks_hostile_values(key, cli_folder):
    key_path, work = cli_folder
    answers = expected_answers(key)
    answers["q1"]["L"] = f"__import__('os').system('{SHELL}')"
    answers["q1"]["y"] = "9**9**9"
    answers["q1"]["z"] = ["1", "-0"]
    answers["q1"]["dL_dW"] = {"a": 1}
    answers["q2"]["merges"] = "print(1)"
    path = write_answer_file(work / "answers.yaml", key, answers)

    finished = run_mark(key_path, path, work)

    assert finished.returncode == 0, finished.stderr
    assert "Traceback" not in finished.stderr
    report = json.loads(finished.stdout)
    verdicts = {part["id"]: part["verdict"] for part in report["parts"]}
    assert verdicts["q1.L"] == "invalid"
    assert verdicts["q1.y"] == "invalid"
    assert verdicts["q1.z"] == "correct"
    assert verdicts["q1.dL_dW"] == "invalid"
    assert verdicts["q2.merges"] == "invalid"
    assert verdicts["q2.segmentation"] == "correct"
    assert sorted(path.name for path in work.iterdir()) == ["answers.yaml"]


@pytest.mark.parametrize("case", ["python apply tag", "alias bomb", "deep json", "invalid utf-8", "nul bytes"])
def test_cli_rejects_hostile_file(key, cli_folder, case):
    key_path, work = cli_folder
    data = dict((name, data) for name, data, _ in bad_files(key))[case]
    path = work / "answers.yaml"
    path.write_bytes(data)

    finished = run_mark(key_path, path, work)

    assert finished.returncode == 2
    assert finished.stdout == ""
    assert str(path) in finished.stderr
    assert "Traceback" not in finished.stderr
    assert sorted(path.name for path in work.iterdir()) == ["answers.yaml"]


def test_cli_reads_utf16_file(key, cli_folder):
    key_path, work = cli_folder
    text = yaml.safe_dump(answer_file_data(key), sort_keys=False, width=10_000, allow_unicode=True)
    path = work / "answers.yaml"
    path.write_bytes(text.encode("utf-16"))

    finished = run_mark(key_path, path, work)

    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)
    assert report["total"] == report["maximum"]


# Student text is read by marker.mathread's own parser: no code path evaluates it as Python.

# Built-ins called by bare name, functions under any name, and (module, function) pairs.
EVALUATING_BUILTINS = {"eval", "exec", "compile", "__import__"}
EVALUATING_FUNCTIONS = {"sympify", "parse_expr", "lambdify", "parse_latex", "literal_eval"}
EVALUATING_METHODS = {("sympy", "S"), ("yaml", "load"), ("yaml", "unsafe_load"), ("yaml", "full_load"),
                      ("pickle", "load"), ("pickle", "loads"), ("marshal", "loads"), ("subprocess", "run"),
                      ("subprocess", "Popen"), ("os", "system"), ("os", "popen")}
STUDENT_FACING = ["marker", "mlexam/batch", "mlexam/cli_mark.py", "mlexam/cli_check.py", "mlexam/cli_batch.py"]


def evaluating_calls(path: Path) -> list[str]:
    """Return "file:line name" for every call of a function that can run or parse text as code."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        if isinstance(function, ast.Name):
            evaluating = function.id in EVALUATING_BUILTINS | EVALUATING_FUNCTIONS
            name = function.id
        elif isinstance(function, ast.Attribute):
            owner = function.value.id if isinstance(function.value, ast.Name) else ""
            evaluating = function.attr in EVALUATING_FUNCTIONS or (owner, function.attr) in EVALUATING_METHODS
            name = f"{owner}.{function.attr}"
        else:
            continue
        if evaluating:
            found.append(f"{path.name}:{node.lineno} {name}")
    return found


def test_marker_source_evaluates_no_text():
    root = Path(__file__).resolve().parent.parent
    files = []
    for entry in STUDENT_FACING:
        target = root / entry
        if target.is_dir():
            files += sorted(target.rglob("*.py"))
        elif target.exists():
            files.append(target)

    assert len(files) > 5
    assert [call for path in files for call in evaluating_calls(path)] == []


def test_cli_check_names_hostile_part(key, cli_folder):
    """`mlexam check` reports the unreadable part and exits 1, without saying whether answers are right."""
    key_path, work = cli_folder
    path = write_answer_file(work / "answers.yaml", key, with_part(key, "q1.L", f"__import__('os').system('{SHELL}')"))

    finished = subprocess.run([sys.executable, "-m", "mlexam", "check", str(path), "--key", str(key_path)],
                              cwd=work, capture_output=True, text=True)

    assert finished.returncode == 1, finished.stdout + finished.stderr
    assert "q1.L" in finished.stdout + finished.stderr
    assert "Traceback" not in finished.stderr
    assert sorted(path.name for path in work.iterdir()) == ["answers.yaml"]
