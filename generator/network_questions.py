"""Question builders for the sigmoid, squared-error, two-layer and batch-mean networks.

A random variant is drawn within the ranges of its difficulty (`DIFFICULTY`), kept
hand-computable (`LOGIT_SPREAD`, `SIGMOID_LOGIT_BOUND`, `HIDDEN_BOUND`,
`RESIDUAL_BOUND`), and used only after `networks.check_variant` has
recomputed every value by central finite differences of the loss at 50 digits.
"""

from __future__ import annotations

import functools
import logging
from decimal import Decimal

import mpmath
import numpy as np
import sympy

from generator import networks
from generator.backprop_questions import FORMS
from generator.errors import ProblemError
from generator.exact import decimal_text, decimal_value, exact_text, to_mpmath
from generator.networks import PART_ORDER, PROBLEM_CLASSES, SOLVERS, check_variant
from generator.question import MAX_DRAWS, Part, Question

log = logging.getLogger(__name__)

NETWORK_TYPES = tuple(PART_ORDER)

# Ranges per difficulty; an explicit spec field (classes, outputs, inputs, hidden,
# magnitude, fractions) overrides its entry. Sizes are (low, high), both included.
DIFFICULTY = {
    "easy": {"classes": (2, 2), "outputs": (1, 2), "inputs": (2, 2), "hidden": (2, 2), "magnitude": 1, "fractions": False},
    "medium": {"classes": (2, 3), "outputs": (2, 3), "inputs": (2, 3), "hidden": (2, 3), "magnitude": 2, "fractions": False},
    "hard": {"classes": (3, 4), "outputs": (3, 4), "inputs": (3, 4), "hidden": (3, 4), "magnitude": 2, "fractions": True},
}
DEFAULT_DIFFICULTY = "medium"
MAX_SIZE = 4  # matrices are at most 4 x 4 so that they fit on a page
MAX_MAGNITUDE = 3
BIAS_MAGNITUDE = 1  # biases lie in [-1, 1], in halves when fractions are on

# Bounds that keep the exact forms short. Softmax logits of one example differ by at
# most 3, so forms stay like e, e^2, e^3. Sigmoid logits, hidden pre-activations and
# squared-error residuals y - t lie in [-3, 3].
LOGIT_SPREAD = 3
SIGMOID_LOGIT_BOUND = 3
HIDDEN_BOUND = 3
RESIDUAL_BOUND = 3
# An entry with more operations than this is shown on the key as a decimal only.
MAX_SHOWN_OPS = 24

SHAPES = ("any", "rectangular")
GRADIENT_PARTS = {
    "backprop_sigmoid_bce": ("delta", "dL_dW", "dL_db", "dL_dx"),
    "backprop_linear_mse": ("delta", "dL_dW", "dL_db", "dL_dx"),
    "backprop_two_layer": ("delta2", "dL_dW2", "dL_db2", "dL_dh", "delta1", "dL_dW1", "dL_db1", "dL_dx"),
    "backprop_batch_mean": ("delta", "dL_dW", "dL_db"),
}
MARKS = {
    "backprop_sigmoid_bce": {"z": 1, "y": 1, "L": 1, "delta": 1, "dL_dW": 2, "dL_db": 1, "dL_dx": 2, "W_new": 1, "b_new": 1},
    "backprop_linear_mse": {"y": 1, "L": 1, "delta": 1, "dL_dW": 2, "dL_db": 1, "dL_dx": 2, "W_new": 1, "b_new": 1},
    "backprop_two_layer": {"z1": 1, "h": 1, "z2": 1, "y": 2, "L": 1, "delta2": 1, "dL_dW2": 2, "dL_db2": 1,
                           "dL_dh": 2, "delta1": 2, "dL_dW1": 2, "dL_db1": 1, "dL_dx": 2,
                           "W1_new": 1, "b1_new": 1, "W2_new": 1, "b2_new": 1},
    "backprop_batch_mean": {"z": 1, "y": 2, "L": 1, "delta": 2, "dL_dW": 2, "dL_db": 1, "W_new": 1, "b_new": 1},
}
TITLES = {
    "backprop_sigmoid_bce": "Backpropagation through sigmoid outputs with binary cross-entropy",
    "backprop_linear_mse": "Backpropagation through a linear layer with squared error",
    "backprop_two_layer": "Backpropagation through a two-layer network",
    "backprop_batch_mean": "Backpropagation with the mean loss over a batch",
}
# Fields each type accepts in a spec besides type, title and marks.
COMMON_FIELDS = {"fixed", "parts", "difficulty", "inputs", "magnitude", "fractions", "shape", "learning_rate"}
FIELDS = {
    "backprop_sigmoid_bce": COMMON_FIELDS | {"outputs"},
    "backprop_linear_mse": COMMON_FIELDS | {"outputs", "loss_form"},
    "backprop_two_layer": COMMON_FIELDS | {"classes", "hidden", "activation", "allow_relu_zero"},
    "backprop_batch_mean": COMMON_FIELDS | {"classes"},
}
FIXED_FIELDS = {
    "backprop_sigmoid_bce": ("W", "x", "b", "t"),
    "backprop_linear_mse": ("W", "x", "b", "t"),
    "backprop_two_layer": ("W1", "b1", "W2", "b2", "x", "t"),
    "backprop_batch_mean": ("W", "b", "x1", "t1", "x2", "t2"),
}


# Spec fields

def field_problems(question: dict) -> list[tuple[str, str]]:
    """Return (field, message) for every invalid network setting in one spec question."""
    problems = []
    # classes, inputs, difficulty and a magnitude below 1 are checked with every type's fields.
    choices = {"shape": SHAPES, "activation": networks.ACTIVATIONS, "loss_form": networks.LOSS_FORMS}
    for name, allowed in choices.items():
        if name in question and question[name] not in allowed:
            problems.append((name, f"must be one of {', '.join(allowed)}, found {question[name]!r}"))
    for name in ("fractions", "allow_relu_zero"):
        if name in question and not isinstance(question[name], bool):
            problems.append((name, f"must be true or false, found {question[name]!r}"))
    for name in ("outputs", "hidden"):
        value = question.get(name)
        if name in question and not (_is_whole(value) and 1 <= value <= MAX_SIZE):
            problems.append((name, f"must be a whole number from 1 to {MAX_SIZE}, found {value!r}"))
    magnitude = question.get("magnitude")
    if _is_whole(magnitude) and magnitude > MAX_MAGNITUDE:
        problems.append(("magnitude", f"must be at most {MAX_MAGNITUDE} so entries stay small, found {magnitude}"))
    if "learning_rate" in question:
        try:
            rate = networks.read_number(str(question["learning_rate"]), "learning rate")
        except ProblemError:
            rate = None
        if rate is None or not rate > 0:
            problems.append(("learning_rate", f"must be a positive number such as 0.1 or 1/2, found {question['learning_rate']!r}"))
    return problems


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# Drawing a variant

def draw_settings(qtype: str, spec: dict, rng: np.random.Generator) -> dict:
    """Resolve the difficulty's ranges and the explicit fields into sizes and entry ranges."""
    difficulty = spec.get("difficulty", DEFAULT_DIFFICULTY)
    if difficulty not in DIFFICULTY:
        raise ProblemError("difficulty", difficulty, f"one of {', '.join(DIFFICULTY)}")
    ranges = DIFFICULTY[difficulty]
    rectangular = spec.get("shape", "any") == "rectangular"
    out_name = "outputs" if qtype in ("backprop_sigmoid_bce", "backprop_linear_mse") else "classes"

    def size(name: str) -> int:
        if name in spec:
            return int(spec[name])
        low, high = ranges[name]
        return int(rng.integers(low, high + 1))

    # Rectangular: the matrices that meet x are not square, so a transposed dL/dW has the wrong shape.
    for _ in range(MAX_DRAWS):
        sizes = {"outputs": size(out_name), "inputs": size("inputs")}
        if qtype == "backprop_two_layer":
            sizes["hidden"] = size("hidden")
            square = sizes["hidden"] == sizes["inputs"] or sizes["hidden"] == sizes["outputs"]
        else:
            square = sizes["outputs"] == sizes["inputs"]
        if not (rectangular and square):
            break
    else:
        raise ProblemError("shape", "rectangular", f"sizes whose matrices are not square; change {out_name}, "
                                                   "inputs or hidden")
    return {**sizes, "magnitude": int(spec.get("magnitude", ranges["magnitude"])),
            "fractions": bool(spec.get("fractions", ranges["fractions"])),
            "learning_rate": networks.read_number(str(spec.get("learning_rate", "1/10")), "learning rate")}


def _entries(rng: np.random.Generator, shape: tuple[int, int], magnitude: int, fractions: bool,
             nonzero: bool = False) -> np.ndarray:
    """Draw whole numbers in [-magnitude, magnitude], or halves in that range when fractions is on.

    The entries are float64. Whole numbers and halves are exact in float64, and so are the
    sums and products that the bound checks form from them at these sizes.
    """
    steps = 2 if fractions else 1
    values = rng.integers(-magnitude * steps, magnitude * steps + 1, size=shape)
    while nonzero and (values == 0).any():
        values = np.where(values == 0, rng.integers(-magnitude * steps, magnitude * steps + 1, size=shape), values)
    return values / steps


def _exact(values: np.ndarray) -> sympy.Matrix:
    """Turn drawn whole numbers or halves into a matrix of exact rationals."""
    rows, cols = values.shape
    return sympy.Matrix(rows, cols, [sympy.Rational(int(v * 2), 2) for v in values.flat])


def _rows_nonzero(W: np.ndarray) -> bool:
    return bool((W != 0).any(axis=1).all())


def _has_fraction(*matrices: np.ndarray) -> bool:
    return any((m != np.floor(m)).any() for m in matrices)


def _spread_ok(z: np.ndarray) -> bool:
    return float(z.max() - z.min()) <= LOGIT_SPREAD


def draw_candidate(qtype: str, settings: dict, spec: dict, rng: np.random.Generator):
    """Draw one problem, or return None when the cheap numeric bounds already fail.

    The bounds are checked on the float entries, and only a candidate that passes them
    is built in exact arithmetic.
    """
    K, D, m, fractions = settings["outputs"], settings["inputs"], settings["magnitude"], settings["fractions"]
    eta = settings["learning_rate"]
    x = _entries(rng, (D, 1), m, fractions, nonzero=True)
    if qtype == "backprop_two_layer":
        H = settings["hidden"]
        W1, b1 = _entries(rng, (H, D), m, fractions), _entries(rng, (H, 1), BIAS_MAGNITUDE, fractions)
        W2, b2 = _entries(rng, (K, H), m, fractions), _entries(rng, (K, 1), BIAS_MAGNITUDE, fractions)
        z1 = W1 @ x + b1
        if np.abs(z1).max() > HIDDEN_BOUND or not _rows_nonzero(W1) or not _rows_nonzero(W2):
            return None
        activation = spec.get("activation", "relu")
        if activation == "relu" and (z1 == 0).any() and not spec.get("allow_relu_zero", False):
            return None
        if fractions and not _has_fraction(W1, b1, W2, b2, x):
            return None
        h = z1 if activation != "relu" else np.maximum(z1, 0)
        if activation == "sigmoid":
            h = 1 / (1 + np.exp(-z1))
        elif activation == "tanh":
            h = np.tanh(z1)
        if not _spread_ok(W2 @ h + b2):
            return None
        target = int(rng.integers(K))
        # When every hidden unit is 0, dL/dW2 = delta2 h^T is all zero, which draw_problem
        # would reject only after solving. The target is drawn before this check, so the
        # random stream after a rejection here is the same as after a rejection there.
        if not h.any():
            return None
        return networks.TwoLayerProblem(_exact(W1), _exact(b1), _exact(W2), _exact(b2), _exact(x),
                                        target, activation, eta)

    W, b = _entries(rng, (K, D), m, fractions), _entries(rng, (K, 1), BIAS_MAGNITUDE, fractions)
    if not _rows_nonzero(W) or (fractions and not _has_fraction(W, b, x)):
        return None
    if qtype == "backprop_batch_mean":
        x2 = _entries(rng, (D, 1), m, fractions, nonzero=True)
        X = np.hstack([x, x2])
        Z = W @ X + b
        if np.array_equal(x, x2) or not (_spread_ok(Z[:, 0]) and _spread_ok(Z[:, 1])):
            return None
        return networks.BatchProblem(_exact(W), _exact(b), _exact(X), (int(rng.integers(K)), int(rng.integers(K))), eta)
    z = W @ x + b
    if qtype == "backprop_sigmoid_bce":
        if np.abs(z).max() > SIGMOID_LOGIT_BOUND:
            return None
        return networks.SigmoidProblem(_exact(W), _exact(x), _exact(b),
                                       sympy.Matrix(rng.integers(0, 2, size=K).tolist()), eta)
    t = _entries(rng, (K, 1), m, fractions)
    if np.abs(z - t).max() > RESIDUAL_BOUND:
        return None
    return networks.LinearProblem(_exact(W), _exact(x), _exact(b), _exact(t), spec.get("loss_form", "half"), eta)


def draw_problem(qtype: str, spec: dict, rng: np.random.Generator):
    """Draw variants until one passes the bounds, has no all-zero gradient and passes the
    finite-difference check; return it with its solution."""
    settings = draw_settings(qtype, spec, rng)
    rejected = 0
    for _ in range(MAX_DRAWS):
        problem = draw_candidate(qtype, settings, spec, rng)
        if problem is None:
            rejected += 1
            continue
        quantities = SOLVERS[qtype](problem)
        zero = [name for name in GRADIENT_PARTS[qtype] if all(v == 0 for v in quantities[name].value)]
        failure = f"all-zero {zero[0]}" if zero else check_variant(qtype, problem, quantities)
        if failure is None:
            log.debug("%s: %d draws rejected before this variant", qtype, rejected)
            return problem, quantities
        if not zero:
            log.warning("%s: variant %s rejected by the finite-difference check: %s", qtype, problem.to_dict(), failure)
        rejected += 1
    log.debug("%s: all %d draws rejected", qtype, rejected)
    raise ProblemError(f"{qtype} settings", {k: v for k, v in spec.items() if k not in ("marks", "title")},
                       f"sizes and magnitudes that give hand-computable variants within {MAX_DRAWS} draws; "
                       "lower magnitude, inputs or hidden")


# Tolerances

@functools.lru_cache(maxsize=1024)
def _abs(value: sympy.Basic) -> Decimal:
    # The tolerance rules read each entry of h, delta and W once per entry of the result.
    with mpmath.workdps(30):
        return abs(Decimal(mpmath.nstr(to_mpmath(value), 30)))


def rounding_tolerances(qtype: str, problem, quantities, places: int) -> dict:
    """Tolerance per entry: half a unit in the last place plus the error that the
    student's own rounded inputs to that quantity can carry into it."""
    half = Decimal(5).scaleb(-places - 1)
    eta = _abs(problem.learning_rate)
    value = {name: q.value for name, q in quantities.items()}

    def each(matrix, rule):
        return [[rule(i, j) for j in range(matrix.cols)] for i in range(matrix.rows)]

    def through(W):  # a product W^T v with every entry of v rounded
        return lambda i, j: half * (1 + sum(_abs(W[k, i]) for k in range(W.rows)))

    def update(grad):
        return [[half + eta * g for g in row] for row in grad]

    def outer(delta, x):  # dL/dW = delta x^T from a rounded delta and an exact x
        return lambda i, j: half * (1 + _abs(x[j]))

    tol = {}
    if qtype == "backprop_two_layer":
        W1, W2, x, h = problem.W1, problem.W2, problem.x, value["h"]
        smooth = problem.activation != "relu"
        tol["z1"] = each(value["z1"], lambda i, j: half)
        tol["h"] = each(h, lambda i, j: half * (2 if smooth else 1))
        tol["z2"] = each(value["z2"], lambda i, j: half * (1 + sum(_abs(v) for v in W2.row(i))))
        tol["y"] = each(value["y"], lambda i, j: 2 * half)  # softmax moves at most half as far as its rounded logits
        tol["L"] = half + half / _abs(value["y"][problem.target])
        tol["delta2"] = each(value["delta2"], lambda i, j: half)
        tol["dL_dW2"] = each(value["dL_dW2"], lambda i, j: half * (1 + _abs(h[j]) + _abs(value["delta2"][i])))
        tol["dL_db2"] = each(value["dL_db2"], lambda i, j: half)
        tol["dL_dh"] = each(value["dL_dh"], through(W2))
        tol["delta1"] = each(value["delta1"], lambda i, j: half * (2 + 2 * _abs(value["dL_dh"][i])) if smooth else half * 2)
        tol["dL_dW1"] = each(value["dL_dW1"], outer(value["delta1"], x))
        tol["dL_db1"] = each(value["dL_db1"], lambda i, j: half)
        tol["dL_dx"] = each(value["dL_dx"], through(W1))
        for name in ("W1", "b1", "W2", "b2"):
            tol[f"{name}_new"] = update(tol[f"dL_d{name}"])
    elif qtype == "backprop_batch_mean":
        X, Y = problem.X, value["y"]
        tol["z"] = each(value["z"], lambda i, j: half)
        tol["y"] = each(Y, lambda i, j: half)
        tol["L"] = half + sum(half / _abs(Y[k, n]) for n, k in enumerate(problem.targets)) / 2
        tol["delta"] = each(value["delta"], lambda i, j: half)
        tol["dL_dW"] = each(value["dL_dW"], lambda i, j: half * (1 + (_abs(X[j, 0]) + _abs(X[j, 1])) / 2))
        tol["dL_db"] = each(value["dL_db"], lambda i, j: 2 * half)
    else:
        W, x, y, t = problem.W, problem.x, value["y"], problem.t
        if qtype == "backprop_sigmoid_bce":
            tol["z"] = each(value["z"], lambda i, j: half)
            tol["y"] = each(y, lambda i, j: half + half / 4)  # sigmoid' <= 1/4
            tol["L"] = half + sum(half / _abs(y[i] if t[i] == 1 else 1 - y[i]) for i in range(len(t)))
            tol["delta"] = each(value["delta"], lambda i, j: half)
        else:
            scale = 1 if problem.loss_form == "half" else 2
            tol["y"] = each(y, lambda i, j: half)
            tol["L"] = half + sum(half * (_abs(d) + 1) for d in value["delta"])
            tol["delta"] = each(value["delta"], lambda i, j: half * (1 + scale))
        tol["dL_dW"] = each(value["dL_dW"], outer(value["delta"], x))
        tol["dL_db"] = each(value["dL_db"], lambda i, j: half)
        tol["dL_dx"] = each(value["dL_dx"], through(W))
    for name in ("W", "b"):
        if f"dL_d{name}" in tol and qtype != "backprop_two_layer":
            tol[f"{name}_new"] = update(tol[f"dL_d{name}"])
    return {name: _layout(entries, quantities[name].value) for name, entries in tol.items()}


def _layout(entries, value):
    """Lay tolerances out like decimal_value: a scalar, a list for a vector, rows for a matrix."""
    if not isinstance(value, sympy.MatrixBase):
        return _decimal_string(entries)
    if value.cols == 1:
        return [_decimal_string(row[0]) for row in entries]
    return [[_decimal_string(v) for v in row] for row in entries]


def _decimal_string(value: Decimal) -> str:
    return format(value.quantize(Decimal("1e-12")).normalize(), "f")


# Building the question

def _kind(value) -> str:
    if not isinstance(value, sympy.MatrixBase):
        return "scalar"
    return "vector" if value.cols == 1 else "matrix"


def _too_long(value) -> bool:
    """Return whether an exact form is too long to read. That is a form with many
    operations, or e raised to a fraction of exponentials (softmax after tanh units)."""
    entries = [v for row in value.tolist() for v in row] if isinstance(value, sympy.MatrixBase) else [value]
    return any(_entry_too_long(v) for v in entries)


@functools.lru_cache(maxsize=4096)
def _entry_too_long(value: sympy.Basic) -> bool:
    # A key shows one entry in several places (delta in dL/dW and in the update), and
    # count_ops walks the whole tree, so each entry is measured once.
    if value.is_Rational:
        return False
    return sympy.count_ops(value) > MAX_SHOWN_OPS or any(not power.args[0].is_Rational
                                                         for power in value.atoms(sympy.exp))


def _shown(value, places: int):
    """Return the value as the key prints it: exact, or rounded when its exact form is too long."""
    if not isinstance(value, sympy.Basic | sympy.MatrixBase) or not _too_long(value):
        return value
    if isinstance(value, sympy.MatrixBase):
        return value.applyfunc(lambda v: _shown(v, places))
    text = decimal_text(value, places)
    digits = len(text.lstrip("-").replace(".", "").lstrip("0")) or 1
    return sympy.Float(text, digits)


def conventions(qtype: str, problem, places: int) -> dict:
    common = {"vectors": "column", "decimal_places": places, "learning_rate": str(problem.learning_rate),
              "update": "theta <- theta - eta dL/dtheta"}
    if qtype == "backprop_sigmoid_bce":
        return {**common, "layer": "z = W x + b, W is K x D", "output": "y = sigmoid(z), entrywise",
                "loss": "L = -sum_i [t_i log y_i + (1 - t_i) log(1 - y_i)], natural log"}
    if qtype == "backprop_linear_mse":
        loss = "L = 1/2 ||y - t||^2" if problem.loss_form == "half" else "L = ||y - t||^2"
        return {**common, "layer": "y = W x + b, W is K x D", "loss": loss}
    if qtype == "backprop_two_layer":
        return {**common, "layers": "h = f(W1 x + b1), W1 is H x D; z2 = W2 h + b2, W2 is K x H",
                "activation": problem.activation, "relu_derivative_at_0": "0",
                "loss": "cross-entropy of softmax(z2), natural log"}
    return {**common, "layer": "z = W x + b, W is K x D", "batch": "columns of X are the examples x1, x2",
            "loss": "L = (L1 + L2) / 2, the mean cross-entropy over the batch, natural log"}


def build_network_question(qtype: str, qid: str, spec: dict, rng: np.random.Generator, places: int) -> Question:
    fixed = spec.get("fixed")
    problem_class = PROBLEM_CLASSES[qtype]
    if fixed:
        settings = {name: spec[name] for name in ("learning_rate", "activation", "loss_form") if name in spec}
        problem = problem_class.from_dict({**settings, **fixed})
        quantities = SOLVERS[qtype](problem)
        source = "fixed"
    else:
        problem, quantities = draw_problem(qtype, spec, rng)
        source = "random"

    tolerances = rounding_tolerances(qtype, problem, quantities, places)
    marks = {**MARKS[qtype], **spec.get("marks", {})}
    asked = [name for name in spec.get("parts", PART_ORDER[qtype]) if name in quantities]
    # Each value is written once, and the parts and the solution share the strings. The
    # values share subexpressions, which the cache evaluates once for all decimals.
    cache: dict = {}
    solution = {name: {"formula": q.formula, "exact": exact_text(q.value),
                       "decimal": decimal_value(q.value, places, cache)}
                for name, q in quantities.items()}
    parts = []
    for name in asked:
        quantity = quantities[name]
        kind = _kind(quantity.value)
        parts.append(Part(f"{qid}.{name}", name, quantity.label, kind, int(marks[name]), FORMS[kind],
                          solution[name]["exact"], solution[name]["decimal"], tolerances[name]))

    # The worked solution as the key prints it: long exact forms are shown rounded.
    steps = {name: {"substitution": [_shown(item, places) for item in q.substitution],
                    "exact_shown": not _too_long(q.value)}
             for name, q in quantities.items() if name in asked}
    return Question(qid, qtype, spec.get("title", TITLES[qtype]), source, conventions(qtype, problem, places),
                    problem.to_dict(), parts, quantities, solution,
                    context={"problem": problem, "asked": asked, "steps": steps,
                             "difficulty": spec.get("difficulty", DEFAULT_DIFFICULTY)})


def builder(qtype: str):
    """Return the registry's build function for one network type."""
    def build(qid: str, spec: dict, rng: np.random.Generator, places: int) -> Question:
        return build_network_question(qtype, qid, spec, rng, places)
    return build


# Error carried forward, for the marker

# Each part computed from earlier parts: (the parts it reads, how). A part with no
# entry reads only the problem's givens, so it has nothing to carry forward.
def _carry_rules(qtype: str, problem) -> dict:
    def layer_rules(delta_name="delta"):
        return {
            "dL_dW": ((delta_name,), lambda v: v[delta_name] * problem.x.T),
            "dL_db": ((delta_name,), lambda v: v[delta_name]),
            "dL_dx": ((delta_name,), lambda v: problem.W.T * v[delta_name]),
            "W_new": (("dL_dW",), lambda v: problem.W - problem.learning_rate * v["dL_dW"]),
            "b_new": (("dL_db",), lambda v: problem.b - problem.learning_rate * v["dL_db"]),
        }

    if qtype == "backprop_sigmoid_bce":
        t = problem.t
        return {
            "y": (("z",), lambda v: v["z"].applyfunc(networks.sigmoid)),
            "L": (("y",), lambda v: -sympy.Add(*[t[i] * sympy.log(y) + (1 - t[i]) * sympy.log(1 - y)
                                                 for i, y in enumerate(v["y"])])),
            "delta": (("y",), lambda v: v["y"] - t),
            **layer_rules(),
        }
    if qtype == "backprop_linear_mse":
        scale = sympy.Rational(1, 2) if problem.loss_form == "half" else 1
        return {
            "L": (("y",), lambda v: scale * sympy.Add(*[r ** 2 for r in v["y"] - problem.t])),
            "delta": (("y",), lambda v: 2 * scale * (v["y"] - problem.t)),
            **layer_rules(),
        }
    if qtype == "backprop_batch_mean":
        half = sympy.Rational(1, 2)

        def column_softmax(Z):
            return sympy.Matrix.hstack(*[networks.softmax(Z.col(n)) for n in range(Z.cols)])

        return {
            "y": (("z",), lambda v: column_softmax(v["z"])),
            "L": (("y",), lambda v: -half * sympy.Add(*[sympy.log(v["y"][k, n]) for n, k in enumerate(problem.targets)])),
            "delta": (("y",), lambda v: v["y"] - problem.T),
            "dL_dW": (("delta",), lambda v: half * v["delta"] * problem.X.T),
            "dL_db": (("delta",), lambda v: half * (v["delta"].col(0) + v["delta"].col(1))),
            "W_new": (("dL_dW",), lambda v: problem.W - problem.learning_rate * v["dL_dW"]),
            "b_new": (("dL_db",), lambda v: problem.b - problem.learning_rate * v["dL_db"]),
        }
    f, eta = problem.activation, problem.learning_rate
    return {
        "h": (("z1",), lambda v: v["z1"].applyfunc(lambda z: networks.activation(f, z))),
        "z2": (("h",), lambda v: problem.W2 * v["h"] + problem.b2),
        "y": (("z2",), lambda v: networks.softmax(v["z2"])),
        "L": (("y",), lambda v: -sympy.log(v["y"][problem.target])),
        "delta2": (("y",), lambda v: v["y"] - problem.t),
        "dL_dW2": (("delta2", "h"), lambda v: v["delta2"] * v["h"].T),
        "dL_db2": (("delta2",), lambda v: v["delta2"]),
        "dL_dh": (("delta2",), lambda v: problem.W2.T * v["delta2"]),
        "delta1": (("dL_dh", "z1"), lambda v: sympy.Matrix(
            [v["dL_dh"][j] * networks.activation_derivative(f, v["z1"][j]) for j in range(problem.W1.rows)])),
        "dL_dW1": (("delta1",), lambda v: v["delta1"] * problem.x.T),
        "dL_db1": (("delta1",), lambda v: v["delta1"]),
        "dL_dx": (("delta1",), lambda v: problem.W1.T * v["delta1"]),
        "W1_new": (("dL_dW1",), lambda v: problem.W1 - eta * v["dL_dW1"]),
        "b1_new": (("dL_db1",), lambda v: problem.b1 - eta * v["dL_db1"]),
        "W2_new": (("dL_dW2",), lambda v: problem.W2 - eta * v["dL_dW2"]),
        "b2_new": (("dL_db2",), lambda v: problem.b2 - eta * v["dL_db2"]),
    }


def _as_sympy(value):
    """Turn a marker's value into sympy: a nested list or 2-D array into a Matrix, a flat
    list or 1-D array into a column, a float into a sympy Float."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list):
        rows = value if value and isinstance(value[0], list) else [[v] for v in value]
        return sympy.Matrix([[_as_sympy(v) for v in row] for row in rows])
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return sympy.Integer(value) if isinstance(value, (int, np.integer)) else sympy.Float(float(value))
    return value


def _marker_layout(value):
    """Lay a result out in the marker's layout, which stores a column vector as a flat list."""
    if isinstance(value, sympy.MatrixBase) and value.cols == 1:
        return list(value)
    return value


def part_shapes(qtype: str, problem) -> dict[str, tuple[int, int] | None]:
    """Return the shape of every part (None for a scalar), without solving the problem."""
    if qtype == "backprop_two_layer":
        H, D, K = problem.W1.rows, problem.W1.cols, problem.W2.rows
        return {"z1": (H, 1), "h": (H, 1), "z2": (K, 1), "y": (K, 1), "L": None, "delta2": (K, 1),
                "dL_dW2": (K, H), "dL_db2": (K, 1), "dL_dh": (H, 1), "delta1": (H, 1), "dL_dW1": (H, D),
                "dL_db1": (H, 1), "dL_dx": (D, 1), "W1_new": (H, D), "b1_new": (H, 1), "W2_new": (K, H),
                "b2_new": (K, 1)}
    K, D = problem.W.shape
    if qtype == "backprop_batch_mean":
        return {"z": (K, 2), "y": (K, 2), "L": None, "delta": (K, 2), "dL_dW": (K, D), "dL_db": (K, 1),
                "W_new": (K, D), "b_new": (K, 1)}
    return {"z": (K, 1), "y": (K, 1), "L": None, "delta": (K, 1), "dL_dW": (K, D), "dL_db": (K, 1),
            "dL_dx": (D, 1), "W_new": (K, D), "b_new": (K, 1)}


def carry_forward(qtype: str, problem_dict: dict, name: str, given: dict):
    """Return part `name` computed from the student's own earlier values in `given`:
    a sympy scalar, a flat list of sympy values for a vector, a sympy Matrix otherwise.

    A part that reads several earlier parts (dL/dW2 reads delta2 and h) takes each from
    `given` where the student gave it and from the exact solution otherwise. Returns
    None when the part reads no earlier part, when the student gave none of the parts
    it reads, or when a given value is not admissible.
    """
    problem = PROBLEM_CLASSES[qtype].from_dict(problem_dict)
    rule = _carry_rules(qtype, problem).get(name)
    if rule is None:
        return None
    reads, compute = rule
    if not any(given.get(part) is not None for part in reads):
        return None
    values = {}
    missing = [part for part in reads if given.get(part) is None]
    exact = SOLVERS[qtype](problem) if missing else {}
    for part in reads:
        value = _as_sympy(given[part]) if given.get(part) is not None else exact[part].value
        if not admissible(qtype, problem_dict, part, value, problem):
            return None
        values[part] = value
    return _marker_layout(compute(values))


# A probability vector rounded entry by entry to 2 or more places sums to 1 within
# this tolerance. A larger gap means the entries are not a rounded probability vector.
PROBABILITY_SUM_TOLERANCE = sympy.Rational(1, 50)


def _numeric(value) -> sympy.Float | None:
    number = sympy.N(value, 30)
    return number if number.is_real and number.is_finite else None


def _inside(values, low, high, strict=True) -> bool:
    numbers = [_numeric(v) for v in values]
    if any(n is None for n in numbers):
        return False
    return all(low < n < high for n in numbers) if strict else all(low <= n <= high for n in numbers)


def _probability_columns(matrix: sympy.Matrix) -> bool:
    for n in range(matrix.cols):
        column = list(matrix.col(n))
        if not _inside(column, 0, 1) or abs(sum(_numeric(v) for v in column) - 1) > PROBABILITY_SUM_TOLERANCE:
            return False
    return True


def admissible(qtype: str, problem_dict: dict, name: str, value, problem=None) -> bool:
    """Return whether a student's value of part `name` may be carried into later parts.

    The value must be real, finite and of the part's shape. A softmax output must be a
    probability vector (each column of Y for a batch). Sigmoid outputs and units must
    lie in (0, 1), tanh units in (-1, 1), and relu units and the loss must be non-negative.
    """
    problem = problem or PROBLEM_CLASSES[qtype].from_dict(problem_dict)
    shape = part_shapes(qtype, problem).get(name, "unknown")
    value = _as_sympy(value)
    if shape == "unknown" or value is None:
        return False
    if shape is None:
        if isinstance(value, sympy.MatrixBase) or _numeric(value) is None:
            return False
        return name != "L" or bool(_numeric(value) >= 0)
    if not isinstance(value, sympy.MatrixBase) or value.shape != shape:
        return False
    if any(_numeric(v) is None for v in value):
        return False
    if name == "y":
        if qtype == "backprop_sigmoid_bce":
            return _inside(value, 0, 1)
        if qtype in ("backprop_two_layer", "backprop_batch_mean"):
            return _probability_columns(value)
    if name == "h" and qtype == "backprop_two_layer":
        limits = {"relu": (0, sympy.oo, False), "sigmoid": (0, 1, True), "tanh": (-1, 1, True)}
        low, high, strict = limits[problem.activation]
        return _inside(value, low, high, strict)
    return True


def carry_forward_for(qtype: str):
    return lambda problem_dict, name, given: carry_forward(qtype, problem_dict, name, given)


def admissible_for(qtype: str):
    return lambda problem_dict, name, value: bool(admissible(qtype, problem_dict, name, value))
