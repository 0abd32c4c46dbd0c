"""The spec example in the README loads and builds a paper."""

import re
from pathlib import Path

from generator.paper import build_paper
from generator.spec import load_spec

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_spec_example_builds(tmp_path):
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1
    spec_path = tmp_path / "week3.yaml"
    spec_path.write_text(blocks[0], encoding="utf-8")

    paper = build_paper(load_spec(spec_path), seed=5)

    assert [q.type for q in paper.questions] == ["bpe_train", "backprop_softmax"]
    assert [p.name for p in paper.questions[1].parts] == ["delta", "dL_dW"]
    assert paper.total_marks == paper.questions[0].marks + 5
    assert any(step.is_tie for step in paper.questions[0].solution.steps)
