"""The data every question type produces: a Question with its Parts and exact answers."""

from __future__ import annotations

from dataclasses import dataclass, field

# A random variant that fails its checks is drawn again. After this many failures in a
# row the settings are reported as impossible to meet, so generation never loops forever.
MAX_DRAWS = 500

@dataclass
class Part:
    """One marked part of a question and its expected answer."""

    id: str  # "q1.merges"
    name: str  # key inside the question's block of the answer file: "merges"
    label: str
    kind: str  # merge_list, segmentation, encoding, scalar, vector, matrix
    marks: int
    form: str  # the expected form of the answer, printed on the paper and in the answer file
    expected: object  # exact answer, JSON-ready
    decimal: object = None  # decimal answer at the paper's precision, JSON-ready
    tolerance: object = None  # accepted distance from the exact value, same layout as decimal
    blank: object = ""  # the empty answer put in the blank answer file
    accepted: object = None  # other answers that earn full marks (every valid tie branch)

    def to_dict(self) -> dict:
        data = {"id": self.id, "name": self.name, "label": self.label, "kind": self.kind,
                "marks": self.marks, "form": self.form, "expected": self.expected}
        for name in ("decimal", "tolerance", "accepted"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        return data


@dataclass
class Question:
    """A question as the paper, the key and the marker see it."""

    id: str
    type: str
    title: str
    source: str  # "fixed" or "random"
    conventions: dict
    problem: dict  # JSON-ready inputs, enough for the marker to solve the problem again
    parts: list[Part]
    solution: object  # the solver's result, for the worked solution on the key
    solution_json: dict
    context: dict = field(default_factory=dict)  # extra values for the templates

    @property
    def marks(self) -> int:
        return sum(part.marks for part in self.parts)

    def to_dict(self) -> dict:
        return {"id": self.id, "type": self.type, "title": self.title, "source": self.source,
                "marks": self.marks, "conventions": self.conventions, "problem": self.problem,
                "parts": [part.to_dict() for part in self.parts], "solution": self.solution_json}


