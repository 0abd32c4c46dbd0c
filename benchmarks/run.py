"""Measure mlexam's speed and memory and write the results to docs/benchmarks.md.

Run from the repository root with `make bench` (or `python benchmarks/run.py`). Every
benchmark runs once to warm up and then several times. The page reports the median
and the min-max spread of the timed runs and the machine and library versions. It
marks each target "met" or "missed" and shows a profile for every missed target.

Benchmarks that need a piece of mlexam which is not installed (the marker, batch
mode) or a program that is missing (pdflatex, when it cannot be installed) print a
"skipped" row with the reason instead of failing.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import csv
import ctypes
import datetime
import io
import json
import os
import platform
import pstats
import random
import resource
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

OUTPUT = REPO / "docs" / "benchmarks.md"
LATEX_TEMPLATE = REPO / "benchmarks" / "paper.tex.j2"

# Repetitions after one warm-up run. `make bench` took 8.1–8.6 minutes on an idle two-core
# machine (speed check 0.11 s), 5.3 of them in the three 300-student `batch generate` runs.
COLD_RUNS = 10
RENDER_RUNS = 10
SOLVE_RUNS = 100  # random variants built per question type
LATEX_RUNS = 10
MARK_FILES = 300  # answer files marked in one process, twice
MARK_WARMUP_FILES = 20
CLASS_SIZE = 300
LARGE_CLASS_SIZE = 1000
# Runs of each `batch` command. One run on the small class warms up `batch generate`, and
# one run on the class it then marks warms up `batch mark`.
BATCH_RUNS = 3
# Students generated with 1 and with 2 workers for the speed-up. The 2-worker folder is
# then marked with feedback PDFs, because one feedback PDF takes about as long as one
# rendered paper.
SMALL_CLASS_SIZE = 12

# Every WRONG_EVERY-th filled-in answer file gets one deliberate error.
WRONG_EVERY = 3

# Texlive packages for the pdflatex row: texlive-latex-base alone carries article,
# amsmath, geometry and fancyhdr, and the Computer Modern Type 1 fonts come with it
# through texlive-base.
TEXLIVE_PACKAGES = ["texlive-latex-base"]

MB = 1024 * 1024


@dataclass
class Row:
    """One line of the results table."""

    name: str
    median: str
    spread: str = ""
    runs: str = ""
    target: str = ""
    status: str = ""  # "met", "missed", "skipped" or ""
    cpu: str = ""  # median CPU time (user + system) of the measured process or call


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, str] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {row.name}: {row.median} {row.spread} {row.status}".rstrip(), file=sys.stderr, flush=True)

    def skip(self, name: str, reason: str) -> None:
        self.add(Row(name, "", status=f"skipped: {reason}"))


# ---------------------------------------------------------------- measuring


@dataclass
class RunResult:
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float  # user + system time of the process and the descendants it waited for
    stdout: str
    stderr: str


def run_timed(args: list[str], cwd: Path = REPO, env: dict | None = None) -> RunResult:
    """Run a command to completion; return its wall time and the peak RSS of its largest process.

    The peak comes from wait4's rusage, which on Linux is the maximum resident set of
    the process and of every descendant it waited for, taken one process at a time.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(args, cwd=cwd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = RunResult(seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, out.read().decode(errors="replace"),
                           err.read().decode(errors="replace"))
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} exited with {process.returncode}:\n{result.stderr[-2000:]}")
    return result


class Timings(list):
    """Wall-clock seconds of each timed call, with the CPU seconds of this process in `cpu`."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu: list[float] = []


def repeat(function, runs: int, warmup: int = 1) -> Timings:
    """Call `function` warmup + runs times; return the times of the timed calls."""
    for _ in range(warmup):
        function()
    times = Timings()
    for _ in range(runs):
        start, cpu_start = time.perf_counter(), time.process_time()
        function()
        times.append(time.perf_counter() - start)
        times.cpu.append(time.process_time() - cpu_start)
    return times


def cpu_text(seconds: list[float], scale: float = 1.0, unit: str = "s", digits: int = 2) -> str:
    return f"{statistics.median(seconds) * scale:.{digits}f} {unit}" if seconds else ""


def spread(values: list[float], unit: str, scale: float = 1.0, digits: int = 2) -> str:
    if len(values) < 2:
        return ""
    space = "" if unit == "×" else " "
    return f"{min(values) * scale:.{digits}f}–{max(values) * scale:.{digits}f}{space}{unit}"


def status(met: bool) -> str:
    return "met" if met else "missed"


# Frames left out of the cumulative list: wrappers that only pass the time on.
WRAPPER_FRAMES = r"^(?!.*(<frozen|click/|runpy|<string>|builtins.exec|__main__|benchmarks/run.py))"


def profile_text(stats: pstats.Stats, limit: int = 16) -> str:
    """Return the top entries by cumulative time (without wrapper frames) and by own time."""
    sections = []
    for order, title in (("cumulative", "by cumulative time"), ("tottime", "by own time")):
        stream = io.StringIO()
        stats.stream = stream
        stats.sort_stats(order).print_stats(WRAPPER_FRAMES, limit if order == "cumulative" else 10)
        lines = stream.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if line.strip().startswith("ncalls")), 0)
        body = [re.sub(r"\S*site-packages/", "", line.replace(str(REPO) + "/", "")) for line in lines[start:]]
        sections.append(f"# {title}\n" + "\n".join(line for line in body if line.strip()))
    return "\n\n".join(sections)


def profile_call(function) -> str:
    profiler = cProfile.Profile()
    profiler.runcall(function)
    return profile_text(pstats.Stats(profiler))


def mlexam_command() -> list[str]:
    script = Path(sys.executable).parent / "mlexam"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlexam"]


# ---------------------------------------------------------------- machine


def python_speed() -> float:
    """Return the CPU seconds of a fixed pure-Python loop (median of three), a yardstick for the machine's speed.

    Shared virtual machines vary in speed from day to day. Compare two runs' figures only
    when their yardsticks agree. Otherwise their times differ by about the yardsticks'
    ratio (an estimate).
    """
    def loop() -> None:
        total = 0
        for number in range(5_000_000):
            total += number

    return statistics.median(cpu_time(loop) for _ in range(3))


def cpu_time(function) -> float:
    started = time.process_time()
    function()
    return time.process_time() - started


def machine_info(load_at_start: tuple[float, float, float], speed_at_start: float) -> list[tuple[str, str]]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    info = [
        ("Date (UTC)", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")),
        ("CPU", cpu),
        ("Cores available", str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())),
        ("Memory", memory),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("Load average (1, 5, 15 min) at start", ", ".join(f"{value:.2f}" for value in load_at_start)),
        ("Load average (1, 5, 15 min) at end", ", ".join(f"{value:.2f}" for value in os.getloadavg())),
        ("Speed check: CPU time of 5 million additions in a Python loop, at start and end",
         f"{speed_at_start:.2f} s, {python_speed():.2f} s"),
    ]
    for package in ("mlexam", "numpy", "sympy", "weasyprint", "pydyf", "fonttools", "jinja2", "pyyaml"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            info.append((package, metadata.version(package)))
    for label, library, symbol in (("Pango", "libpango-1.0.so.0", "pango_version_string"),
                                   ("HarfBuzz", "libharfbuzz.so.0", "hb_version_string")):
        with contextlib.suppress(OSError, AttributeError):
            function = getattr(ctypes.CDLL(library), symbol)
            function.restype = ctypes.c_char_p
            info.append((label, function().decode()))
    with contextlib.suppress(ImportError):
        from weasyprint.text.ffi import harfbuzz_subset
        info.append(("Font subsetting", "HarfBuzz subset library" if harfbuzz_subset else "fontTools (no libharfbuzz-subset)"))
    pdflatex = shutil.which("pdflatex")
    if pdflatex:
        first = subprocess.run([pdflatex, "--version"], capture_output=True, text=True).stdout.splitlines()
        info.append(("pdflatex", first[0] if first else pdflatex))
    return info


# ---------------------------------------------------------------- rows


def bench_cold_generate(report: Report, work: Path) -> None:
    """Time `mlexam generate` of the bundled practice paper from process start to PDFs written."""
    out = work / "cold"
    results = []
    for _ in range(COLD_RUNS + 1):
        results.append(run_timed(mlexam_command() + ["generate", "--out", str(out)]))
    results = results[1:]
    seconds = [r.seconds for r in results]
    peaks = [r.peak_rss_mb for r in results]
    median = statistics.median(seconds)
    peak = max(peaks)
    sizes = ", ".join(f"{p.name.split('-')[-1]} {p.stat().st_size / 1024:.0f} KB" for p in sorted(out.glob("*.pdf")))
    report.add(Row("Cold `mlexam generate` of the practice paper, wall time", f"{median:.2f} s", spread(seconds, "s"),
                   str(COLD_RUNS), "< 2 s", status(median < 2), cpu_text([r.cpu_seconds for r in results])))
    report.add(Row("Cold `mlexam generate`, peak memory", f"{statistics.median(peaks):.0f} MB", spread(peaks, "MB", digits=0),
                   str(COLD_RUNS), "< 250 MB", status(peak < 250)))
    report.notes.append(f"Cold generate writes the paper and key PDFs ({sizes}).")
    if median >= 2:
        profile = work / "cold.prof"
        subprocess.run([sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "mlexam", "generate",
                        "--out", str(out)], cwd=REPO, check=True, capture_output=True)
        report.profiles["Cold `mlexam generate`"] = profile_text(pstats.Stats(str(profile)))


def bench_solutions(report: Report) -> None:
    """Time building and solving each question type's random variant."""
    import numpy as np

    from generator.registry import QUESTION_TYPES

    specs = random_question_specs()
    for name, question_type in QUESTION_TYPES.items():
        spec = specs.get(name, {"type": name})
        rng = np.random.default_rng(12345)
        try:
            times = repeat(lambda: question_type.build("q1", spec, rng, 3), SOLVE_RUNS, warmup=5)
        except Exception as error:  # a type this spec cannot build is reported, not fatal
            report.skip(f"Exact solution, `{name}`", f"cannot build a random variant from {spec}: {error}")
            continue
        median = statistics.median(times)
        quartiles = statistics.quantiles(times, n=4)
        report.add(Row(f"Exact solution, `{name}` (build and solve one random variant)", f"{median * 1000:.1f} ms",
                       f"IQR {quartiles[0] * 1000:.1f}–{quartiles[2] * 1000:.1f} ms, max {max(times) * 1000:.0f} ms",
                       str(SOLVE_RUNS), "< 20 ms", status(median < 0.020), cpu_text(times.cpu, 1000, "ms", 1)))
        if median >= 0.020:
            report.profiles[f"Exact solution, `{name}` (20 variants)"] = profile_call(
                lambda: [question_type.build("q1", spec, rng, 3) for _ in range(20)])


def random_question_specs() -> dict[str, dict]:
    """Return the first random (not fixed) question of each type in the bundled practice spec."""
    from generator.spec import bundled_spec_path, load_spec

    spec = load_spec(bundled_spec_path())
    found: dict[str, dict] = {}
    for section in spec.data["sections"]:
        for question in section["questions"]:
            if "fixed" not in question:
                found.setdefault(question["type"], question)
    # Conceptual questions come from a bank; a spec draws them by topic.
    with contextlib.suppress(ImportError, AttributeError, IndexError):
        from generator.concept_questions import TOPICS

        found.setdefault("concept", {"type": "concept", "topic": list(TOPICS)[0], "count": 2})
    return found


def practice_paper():
    from generator.paper import build_paper
    from generator.spec import bundled_spec_path, load_spec

    return build_paper(load_spec(bundled_spec_path()), 1)


def page_count(html: str) -> int:
    from weasyprint import HTML

    from mlexam.render import AssetFetcher
    from mlexam.resources import resource_dir

    document = HTML(string=html, base_url=str(resource_dir("templates")) + "/", url_fetcher=AssetFetcher())
    return len(document.render().pages)


def bench_render(report: Report) -> dict[str, Timings]:
    """Render the practice paper and key in one process; return the times of each document."""
    from mlexam.render import html_to_pdf, render_html

    paper = practice_paper()
    medians = {}
    for label, template, show_key in (("paper", "paper.html.j2", False), ("key", "key.html.j2", True)):
        html = render_html(template, paper=paper, show_key=show_key)
        pages = page_count(html)
        times = repeat(lambda: html_to_pdf(html), RENDER_RUNS)
        medians[label] = times
        per_page = [t / pages for t in times]
        report.add(Row(f"Warm rendering, practice {label} ({pages} pages), per page",
                       f"{statistics.median(per_page) * 1000:.0f} ms", spread(per_page, "ms", 1000, 0), str(RENDER_RUNS),
                       cpu=cpu_text([t / pages for t in times.cpu], 1000, "ms", 0)))
        report.add(Row(f"Warm rendering, practice {label}, whole document", f"{statistics.median(times):.2f} s",
                       spread(times, "s"), str(RENDER_RUNS), cpu=cpu_text(times.cpu)))
    return medians


def bench_pdflatex(report: Report, weasy_paper: Timings, work: Path) -> None:
    """Time pdflatex on a LaTeX version of the practice paper and compare with WeasyPrint."""
    pdflatex = shutil.which("pdflatex") or install_texlive(report)
    if not pdflatex:
        return
    tex = work / "latex" / "paper.tex"
    tex.parent.mkdir(parents=True, exist_ok=True)
    tex.write_text(latex_paper(practice_paper()), encoding="utf-8")

    def compile_twice() -> None:
        # Two passes, as "Page n of N" needs the label of the last page from the first pass.
        for _ in range(2):
            subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", tex.name],
                           cwd=tex.parent, check=True, capture_output=True)

    def children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    try:
        compile_twice()
        times, cpu = [], []
        for _ in range(LATEX_RUNS):
            start, cpu_start = time.perf_counter(), children_cpu()
            compile_twice()
            times.append(time.perf_counter() - start)
            cpu.append(children_cpu() - cpu_start)
    except subprocess.CalledProcessError as error:
        log_file = tex.with_suffix(".log")
        tail = log_file.read_text(errors="replace")[-1500:] if log_file.exists() else error.stdout[-1500:]
        report.skip("pdflatex, practice paper", f"pdflatex failed on {tex.name}: {tail}")
        return
    median = statistics.median(times)
    ratio = statistics.median(weasy_paper) / median
    cpu_ratio = statistics.median(weasy_paper.cpu) / statistics.median(cpu)
    pages = subprocess.run(["pdfinfo", str(tex.with_suffix(".pdf"))], capture_output=True, text=True).stdout \
        if shutil.which("pdfinfo") else ""
    found = re.search(r"Pages:\s+(\d+)", pages)
    report.add(Row(f"pdflatex, practice paper ({found.group(1) + ' pages, ' if found else ''}two passes, "
                   "new process each)", f"{median:.2f} s", spread(times, "s"), str(LATEX_RUNS), cpu=cpu_text(cpu)))
    report.add(Row("WeasyPrint time / pdflatex time per question paper (warm WeasyPrint; CPU-time ratio in the "
                   "CPU column)", f"{ratio:.2f}", "", "", "<= 1", status(ratio <= 1), f"{cpu_ratio:.2f}"))
    if ratio > 1:
        from mlexam.render import html_to_pdf, render_html

        html = render_html("paper.html.j2", paper=practice_paper(), show_key=False)
        report.profiles["WeasyPrint rendering of the practice paper"] = profile_call(lambda: html_to_pdf(html))


def install_texlive(report: Report) -> str | None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        report.skip("pdflatex, practice paper", "pdflatex is not installed, and installing texlive needs root and apt-get")
        return None
    print(f"installing {' '.join(TEXLIVE_PACKAGES)} from the Debian archive", file=sys.stderr, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    result = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *TEXLIVE_PACKAGES],
                            capture_output=True, text=True, env=env)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, env=env)
        result = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *TEXLIVE_PACKAGES],
                                capture_output=True, text=True, env=env)
    pdflatex = shutil.which("pdflatex")
    if not pdflatex:
        report.skip("pdflatex, practice paper", f"apt-get install {' '.join(TEXLIVE_PACKAGES)} failed: "
                    f"{result.stderr.strip()[-300:]}")
    return pdflatex


def latex_paper(paper) -> str:
    """Render the question paper as LaTeX with benchmarks/paper.tex.j2."""
    import jinja2
    import sympy

    env = jinja2.Environment(block_start_string="((*", block_end_string="*))",
                             variable_start_string="(((", variable_end_string=")))",
                             comment_start_string="{#", comment_end_string="#}",
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["tex"] = tex_escape
    env.filters["latex"] = lambda value: sympy.latex(value, mat_delim="(")
    return env.from_string(LATEX_TEMPLATE.read_text(encoding="utf-8")).render(paper=paper)


TEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "<": r"\textless{}", ">": r"\textgreater{}",
                "δ": r"$\delta$", "∂": r"$\partial$", "η": r"$\eta$", "θ": r"$\theta$", "−": "-", "×": r"$\times$",
                "→": r"$\rightarrow$", "←": r"$\leftarrow$", "≈": r"$\approx$", "’": "'", "–": "--", "—": "---"}


def tex_escape(value: object) -> str:
    return "".join(TEX_SPECIALS.get(char, char) for char in str(value))


# ---------------------------------------------------------------- submissions


def filled_answers(key: dict, blank: dict, rng: random.Random, wrong: bool) -> dict:
    """Fill an answer file from a key; with `wrong`, one part chosen by `rng` gets a wrong value."""
    answers = dict(blank)
    answers["answers"] = {}
    for question in key["questions"]:
        values = {}
        for part in question["parts"]:
            value = part.get("decimal", part["expected"])
            values[part["name"]] = answer_text(value)
        answers["answers"][question["id"]] = values
    if wrong:
        question = rng.choice(key["questions"])
        part = rng.choice(question["parts"])
        answers["answers"][question["id"]][part["name"]] = wrong_answer(answers["answers"][question["id"]][part["name"]])
    return answers


def answer_text(value: object) -> object:
    """Write a key value as a student would: numbers in brackets as text, BPE answers as lists and maps."""
    if isinstance(value, list) and value and all(isinstance(v, (str, list)) for v in value):
        if isinstance(value[0], list):
            return "[" + ", ".join("[" + ", ".join(row) + "]" for row in value) + "]"
        if all(re.fullmatch(r"-?[0-9.]+", v) for v in value):
            return "[" + ", ".join(value) + "]"
    return value


def wrong_answer(value: object) -> object:
    if isinstance(value, str) and re.search(r"[0-9]", value):
        return re.sub(r"[0-9]", lambda m: str((int(m.group()) + 1) % 10), value, count=1)
    if isinstance(value, list) and len(value) > 1:
        return list(reversed(value))
    if isinstance(value, dict) and value:
        first = next(iter(value))
        return {**value, first: "x y z"}
    return "0"


def write_yaml(path: Path, data: dict) -> None:
    import yaml

    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


# ---------------------------------------------------------------- marking


def bench_marking(report: Report, work: Path) -> None:
    """Mark answer files one after another in this process through marker.mark_submission."""
    try:
        from marker import mark_submission
        from marker.answers import load_answers
    except ImportError as error:
        report.skip("Marking in one process", f"marker.mark_submission or marker.answers.load_answers not available ({error})")
        return
    from generator.paper import blank_answers_yaml, build_paper
    from generator.spec import bundled_spec_path, load_spec
    import yaml

    spec = load_spec(bundled_spec_path())
    folder = work / "marking"
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    keys = []
    for seed in range(1, 21):
        paper = build_paper(spec, seed)
        key = paper.key_dict()
        keys.append(key)
        blank = yaml.safe_load(blank_answers_yaml(paper))
        for copy in range(-(-MARK_FILES // 20)):
            write_yaml(folder / f"s{seed:02d}-{copy:03d}.yaml", filled_answers(key, blank, rng, copy % WRONG_EVERY == 0))
    files = sorted(folder.glob("*.yaml"))[:MARK_FILES]
    key_for = {f: keys[int(f.name[1:3]) - 1] for f in files}

    def mark(paths: list[Path]) -> None:
        for path in paths:
            mark_submission(key_for[path], load_answers(path))

    try:
        mark(files[:MARK_WARMUP_FILES])
        times = repeat(lambda: mark(files), 2, warmup=0)
    except Exception as error:  # the marker is reported as unusable here, with the error it raised
        report.skip("Marking in one process", f"mark_submission failed: {type(error).__name__}: {error}")
        return
    rates = [len(files) / t for t in times]
    rate = statistics.median(rates)
    reports = [mark_submission(key_for[path], load_answers(path)) for path in files]
    full = sum(1 for r in reports if r.total == r.maximum)
    wrong = sum(1 for path in files if int(path.stem.split("-")[1]) % WRONG_EVERY == 0)
    report.notes.append(f"Marking check: {full} of {len(files)} answer files scored full marks; "
                        f"{len(files) - wrong} were filled in from the key without a deliberate error.")
    report.add(Row(f"Marking in one process ({len(files)} answer files, load_answers + mark_submission)",
                   f"{rate:.0f} files/s", spread(rates, "files/s", digits=0), "2", ">= 500 files/s", status(rate >= 500),
                   f"{len(files) / statistics.median(times.cpu):.0f} files/s"))
    if rate < 500:
        report.profiles["Marking in one process"] = profile_call(
            lambda: [mark_submission(key_for[p], load_answers(p)) for p in files[:200]])


# ---------------------------------------------------------------- batch


def batch_available(command: str) -> str | None:
    """Return None when `mlexam batch COMMAND` exists, or the reason it cannot run."""
    result = subprocess.run(mlexam_command() + ["batch", command, "--help"], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        return f"`mlexam batch {command}` not available ({(result.stderr.strip().splitlines() or ['no output'])[-1]})"
    return None


def write_roster(path: Path, size: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", "name", "email"])
        for number in range(1, size + 1):
            writer.writerow([f"s{number:05d}", f"Student {number}", f"s{number:05d}@example.org"])
    return path


def batch_generate(work: Path, size: int, workers: int, label: str, stub_pdfs: bool = False) -> RunResult:
    """Run `mlexam batch generate` for a roster of `size` students into work/label."""
    from generator.spec import bundled_spec_path

    roster = write_roster(work / f"{label}-roster.csv", size)
    out = work / label
    shutil.rmtree(out, ignore_errors=True)
    args = ["batch", "generate", str(roster), "--spec", str(bundled_spec_path()), "--out", str(out),
            "--workers", str(workers)]
    # The course secret is created beside the output folder, inside the working folder.
    if stub_pdfs:
        return run_timed([sys.executable, "-c", STUB_PDF_RUNNER, *args])
    return run_timed(mlexam_command() + args)


# Runs `mlexam batch ...` with the PDF renderer replaced by one fixed one-page PDF. This
# builds a 1,000-student folder of keys and answer files for `batch mark` without laying
# out 2,000 PDFs, and `batch mark` reads only the key JSON. Worker processes inherit the
# stub because the pool starts them by fork (the Linux default).
STUB_PDF_RUNNER = """
import sys
import mlexam.render as render
stub = render.html_to_pdf("<p>benchmark placeholder</p>")
render.html_to_pdf = lambda html: stub
import mlexam.batch.booklet as booklet
booklet.html_to_pdf = render.html_to_pdf
from mlexam.cli import main
main(sys.argv[1:], prog_name="mlexam")
"""


def write_submissions(batch_dir: Path, out: Path, rng: random.Random) -> int:
    """Fill every student's blank answer file from their key; return how many were written."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for blank_path in sorted(batch_dir.glob("students/*/*-answers.yaml")):
        name = blank_path.parent.name
        key = json.loads((batch_dir / "keys" / f"{name}-key.json").read_text(encoding="utf-8"))
        blank = yaml.safe_load(blank_path.read_text(encoding="utf-8"))
        write_yaml(out / blank_path.name, filled_answers(key, blank, rng, count % WRONG_EVERY == 0))
        count += 1
    return count


def bench_batch(report: Report, work: Path) -> None:
    reason = batch_available("generate")
    if reason:
        report.skip(f"`batch generate`, {CLASS_SIZE} students", reason)
    else:
        bench_batch_generate(report, work)
    reason = reason or batch_available("mark")
    if reason:
        report.skip(f"`batch mark`, {CLASS_SIZE} and {LARGE_CLASS_SIZE} submissions", reason)
        return
    bench_batch_mark(report, work)


def bench_batch_generate(report: Report, work: Path) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(2, cores)
    try:
        batch_generate(work, SMALL_CLASS_SIZE, workers, "small")  # warm-up
        one_worker = [batch_generate(work, SMALL_CLASS_SIZE, 1, "small-1-worker") for _ in range(BATCH_RUNS)]
        two_workers = [batch_generate(work, SMALL_CLASS_SIZE, 2, "small") for _ in range(BATCH_RUNS)]
        full = [batch_generate(work, CLASS_SIZE, workers, "class") for _ in range(BATCH_RUNS)]
    except RuntimeError as error:
        report.skip(f"`batch generate`, {CLASS_SIZE} students", str(error)[:400])
        return
    runs = str(BATCH_RUNS)
    seconds = [r.seconds for r in full]
    median = statistics.median(seconds)
    report.add(Row(f"`batch generate`, {CLASS_SIZE} students ({workers} workers), total",
                   f"{median:.0f} s", spread(seconds, "s", digits=0), runs, "< 120 s", status(median < 120),
                   cpu_text([r.cpu_seconds for r in full], digits=0)))
    rates = [CLASS_SIZE * 2 / r.seconds for r in full]
    report.add(Row(f"`batch generate`, {CLASS_SIZE} students, PDFs per second (paper and key each)",
                   f"{statistics.median(rates):.2f} documents/s", spread(rates, "documents/s"), runs))
    peaks = [r.peak_rss_mb for r in full]
    report.add(Row(f"`batch generate`, {CLASS_SIZE} students, peak memory of the largest process",
                   f"{statistics.median(peaks):.0f} MB", spread(peaks, "MB", digits=0), runs))
    one_median = statistics.median(r.seconds for r in one_worker)
    two_median = statistics.median(r.seconds for r in two_workers)
    ratios = [a.seconds / b.seconds for a, b in zip(one_worker, two_workers)]
    report.add(Row(f"`batch generate` speed-up from 1 to 2 workers ({SMALL_CLASS_SIZE} students, medians "
                   f"{one_median:.1f} s and {two_median:.1f} s)", f"{one_median / two_median:.2f}×",
                   spread(ratios, "×"), f"{runs} each"))
    if median >= 120:
        per_student = statistics.median(r.cpu_seconds for r in full) / CLASS_SIZE
        report.notes.append(
            f"`batch generate` used {per_student:.2f} s of CPU per student. Two workers on two cores "
            f"finish {CLASS_SIZE} students in 120 s only below about {120 * workers / CLASS_SIZE:.2f} s "
            "per student. The warm rendering rows above show that laying out the paper and the key "
            "takes most of it; the profile below shows where WeasyPrint spends that time.")
        from mlexam.batch.booklet import render_student_key
        from mlexam.render import html_to_pdf, render_html

        paper = practice_paper()
        paper.student = {"id": "s00001", "name": "Student 1"}

        def one_student() -> None:
            html_to_pdf(render_html("paper.html.j2", paper=paper, show_key=False))
            render_student_key(paper)

        report.profiles["One student of `batch generate` (paper and key PDFs)"] = profile_call(one_student)


def batch_mark(work: Path, label: str, submissions: Path, options: list[str], runs: int) -> list[RunResult]:
    """Run `mlexam batch mark` once to warm up and `runs` times more, each into a new results folder."""
    results = []
    for number in range(runs + 1):
        out = work / f"{label}-results-{number}"
        shutil.rmtree(out, ignore_errors=True)
        results.append(run_timed(mlexam_command() + ["batch", "mark", str(work / label), str(submissions),
                                                     "--out", str(out), *options]))
    return results[1:]


def bench_batch_mark(report: Report, work: Path) -> None:
    """Time `batch mark` without feedback PDFs on 300 and 1,000 students, then with them on a few."""
    rng = random.Random(11)
    no_feedback = batch_mark_flag(("--no-feedback", "--no-feedback-pdf", "--no-pdf"))
    peaks = {}
    runs = str(BATCH_RUNS)
    for size, label in ((CLASS_SIZE, "class"), (LARGE_CLASS_SIZE, "large")):
        batch_dir = work / label
        if not (batch_dir / "manifest.json").exists():
            try:
                built = batch_generate(work, size, 2, label, stub_pdfs=True)
            except RuntimeError as error:
                report.skip(f"`batch mark`, {size} submissions", f"could not build the batch folder: {str(error)[:300]}")
                continue
            report.add(Row(f"`batch generate`, {size} students with PDF rendering stubbed out, total / peak memory "
                           "(builds the folder for the marking rows)",
                           f"{built.seconds:.0f} s / {built.peak_rss_mb:.0f} MB", "", "1"))
        submissions = work / f"{label}-submissions"
        count = write_submissions(batch_dir, submissions, rng)
        try:
            results = batch_mark(work, label, submissions, no_feedback, BATCH_RUNS)
        except RuntimeError as error:
            report.skip(f"`batch mark`, {count} submissions", str(error)[:400])
            continue
        seconds = [r.seconds for r in results]
        median = statistics.median(seconds)
        peak = statistics.median(r.peak_rss_mb for r in results)
        peaks[count] = peak
        large = count >= LARGE_CLASS_SIZE
        report.add(Row(f"`batch mark`, {count} submissions (gradebook, problems list, class report), total",
                       f"{median:.1f} s", spread(seconds, "s", digits=1), runs, "< 10 s" if large else "",
                       status(median < 10) if large else "", cpu_text([r.cpu_seconds for r in results], digits=1)))
        rates = [count / value for value in seconds]
        report.add(Row(f"`batch mark`, {count} submissions, files per second", f"{count / median:.0f} files/s",
                       spread(rates, "files/s", digits=0), runs))
        report.add(Row(f"`batch mark`, {count} submissions, peak memory", f"{peak:.0f} MB",
                       spread([r.peak_rss_mb for r in results], "MB", digits=0), runs,
                       "< 500 MB" if large else "", status(max(r.peak_rss_mb for r in results) < 500) if large else ""))
        if large and median >= 10:
            profile = work / "batch-mark.prof"
            subprocess.run([sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "mlexam", "batch", "mark",
                            str(batch_dir), str(submissions), "--out", str(work / "profile-results"), *no_feedback],
                           cwd=REPO, capture_output=True)
            if profile.exists():
                report.profiles[f"`batch mark`, {count} submissions"] = profile_text(pstats.Stats(str(profile)))
    if len(peaks) == 2:
        small, large = sorted(peaks)
        growth = (peaks[large] - peaks[small]) / (large - small) * 1024
        report.notes.append(f"Peak memory of `batch mark` went from {peaks[small]:.0f} MB at {small} submissions "
                            f"to {peaks[large]:.0f} MB at {large}, about {growth:.0f} KB per submission.")
    bench_feedback(report, work, rng)


def batch_mark_flag(candidates: tuple[str, ...]) -> list[str]:
    """Return the first of `candidates` that `mlexam batch mark --help` lists, as an argument list."""
    result = subprocess.run(mlexam_command() + ["batch", "mark", "--help"], cwd=REPO, capture_output=True, text=True)
    for flag in candidates:
        if re.search(re.escape(flag) + r"(?![\w-])", result.stdout):
            return [flag]
    return []


def bench_feedback(report: Report, work: Path, rng: random.Random) -> None:
    """Time `batch mark` with feedback PDFs on the small class, when the command offers them."""
    flag = batch_mark_flag(("--feedback", "--feedback-pdf"))
    name = f"`batch mark` with feedback PDFs, {SMALL_CLASS_SIZE} submissions"
    if not flag:
        report.skip(name, "`mlexam batch mark --help` lists no feedback PDF option")
        return
    batch_dir = work / "small"
    if not (batch_dir / "manifest.json").exists():
        report.skip(name, "the small class folder was not generated")
        return
    submissions = work / "small-submissions"
    count = write_submissions(batch_dir, submissions, rng)
    try:
        results = batch_mark(work, "small", submissions, flag, BATCH_RUNS)
    except RuntimeError as error:
        report.skip(name, str(error)[:400])
        return
    seconds = [r.seconds for r in results]
    median = statistics.median(seconds)
    report.add(Row(f"`batch mark` with feedback PDFs, {count} submissions, total", f"{median:.1f} s",
                   spread(seconds, "s", digits=1), str(BATCH_RUNS), cpu=cpu_text([r.cpu_seconds for r in results], digits=1)))
    report.add(Row("`batch mark` with feedback PDFs, files per second", f"{count / median:.2f} files/s",
                   spread([count / value for value in seconds], "files/s"), str(BATCH_RUNS)))


# ---------------------------------------------------------------- page


def write_page(report: Report, info: list[tuple[str, str]], elapsed: float, path: Path) -> None:
    lines = [
        "# Benchmarks",
        "",
        "Written by `benchmarks/run.py` (`make bench`); do not edit by hand. Each benchmark runs once",
        "to warm up, then the number of times in the Runs column. The page shows the median and the",
        "min–max spread (IQR for the per-problem solution times). Peak memory is the maximum resident",
        "set of the largest process, from `wait4`. Wall times depend on the load of the machine, shown",
        "below; the CPU time column (user + system, median; for commands, the process and the worker",
        "processes it waited for) depends much less on it.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in info],
        "",
        "## Results",
        "",
        "| Benchmark | Median | Spread | CPU time | Runs | Target | Status |",
        "|---|---|---|---|---|---|---|",
        *[f"| {r.name} | {r.median} | {r.spread} | {r.cpu} | {r.runs} | {r.target} | {r.status} |"
          for r in report.rows],
        "",
        f"The whole run took {elapsed / 60:.1f} minutes.",
        "",
    ]
    if report.notes:
        lines += ["## Notes", "", *[f"- {note}" for note in report.notes], ""]
    if report.profiles:
        lines += ["## Profiles of missed targets", "",
                  "cProfile, top entries by cumulative time (seconds; paths shortened).", ""]
        for name, text in report.profiles.items():
            lines += [f"### {name}", "", "```", text, "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help="Markdown page to write (default: %(default)s).")
    parser.add_argument("--keep", action="store_true", help="Keep the working folder and print its path.")
    parser.add_argument("--quick", action="store_true",
                        help="Run each benchmark briefly on small classes, to check the script; the numbers are not comparable.")
    options = parser.parse_args()
    if options.quick:
        global COLD_RUNS, RENDER_RUNS, SOLVE_RUNS, LATEX_RUNS, MARK_FILES, CLASS_SIZE, LARGE_CLASS_SIZE, SMALL_CLASS_SIZE
        global BATCH_RUNS
        COLD_RUNS, RENDER_RUNS, SOLVE_RUNS, LATEX_RUNS, MARK_FILES = 2, 2, 10, 2, 40
        CLASS_SIZE, LARGE_CLASS_SIZE, SMALL_CLASS_SIZE, BATCH_RUNS = 4, 10, 2, 2
    load_at_start = os.getloadavg()
    speed_at_start = python_speed()

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="mlexam-bench-"))
    report = Report()
    timings: dict[str, Timings] = {}
    steps = [
        ("cold generate", lambda: bench_cold_generate(report, work)),
        ("exact solutions", lambda: bench_solutions(report)),
        ("rendering", lambda: timings.update(bench_render(report))),
        ("pdflatex", lambda: bench_pdflatex(report, timings["paper"], work)),
        ("marking", lambda: bench_marking(report, work)),
        ("batch", lambda: bench_batch(report, work)),
    ]
    try:
        for name, step in steps:
            print(name, file=sys.stderr, flush=True)
            try:
                step()
            except Exception as error:  # one broken benchmark is reported and the others still run
                report.skip(name, f"failed with {type(error).__name__}: {str(error)[:300]}")
            # The page is rewritten after every step, so that a stopped run leaves what it measured.
            write_page(report, machine_info(load_at_start, speed_at_start), time.perf_counter() - started, options.output)
    finally:
        if options.keep:
            print(f"working folder: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(options.output.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
