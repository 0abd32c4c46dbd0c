"""`mlexam solve bpe` and `mlexam solve backprop`: worked solutions of typed-in problems."""

from __future__ import annotations

import json
import re
import sys

import click

from generator import bpe
from generator.errors import ProblemError

BPE_EXAMPLE = "mlexam solve bpe low:5 lower:2 newest:6 widest:3 --merges 10"
BACKPROP_EXAMPLE = 'mlexam solve backprop --W "1 0; 2 -1" --x "1 2" --b "0 0" --target "1 0"'
# The option that sets each input SoftmaxProblem checks, so a usage error names what to change.
BACKPROP_OPTIONS = {"W": "--W", "x": "--x", "b": "--b", "t": "--target", "target": "--target",
                    "learning rate": "--lr"}


def _usage_error(error: ProblemError, param: str, example: str) -> click.BadParameter:
    return click.BadParameter(f"{error}.\nExample: {example}", param_hint=param)


@click.command("bpe")
@click.argument("corpus", nargs=-1, required=True)
@click.option("--merges", "num_merges", type=click.IntRange(min=0), help="Number of merges to make.")
@click.option("--vocab-size", type=click.IntRange(min=1), help="Stop when the vocabulary reaches this size.")
@click.option("--end-of-word", type=click.Choice([e.value for e in bpe.EndOfWord]), default="separate",
              show_default=True, help="Where the </w> marker goes.")
@click.option("--tie-rule", type=click.Choice([r.value for r in bpe.TieRule]), default="first", show_default=True,
              help="Which tied pair the solution merges: the first to occur, or the greatest.")
@click.option("--min-count", type=click.IntRange(min=1), default=1, show_default=True,
              help="Stop when the maximum pair count is below this.")
@click.option("--unseen", type=click.Choice([u.value for u in bpe.UnseenPolicy]), default="keep", show_default=True,
              help="Encoding of a character never seen in training: keep it, or write [UNK].")
@click.option("--encode", "to_encode", multiple=True, metavar="WORD", help="A new word to encode (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the solution as JSON.")
def solve_bpe(corpus, num_merges, vocab_size, end_of_word, tie_rule, min_count, unseen, to_encode, as_json):
    """Train BPE on CORPUS and show every step.

    CORPUS is plain text (a repeated word raises its frequency) or word:count items.

    \b
    Examples:
      mlexam solve bpe "low lowish" --merges 4
      mlexam solve bpe low:5 lower:2 newest:6 widest:3 --merges 10 --encode lowest
    """
    from generator.bpe_questions import trace_to_dict

    if num_merges is None and vocab_size is None:
        raise click.UsageError(f"give --merges N or --vocab-size N.\nExample: {BPE_EXAMPLE}")
    items = " ".join(corpus).split()
    with_counts = [":" in item for item in items]
    try:
        if all(with_counts):
            words = bpe.read_word_counts(items)
        elif not any(with_counts):
            words = bpe.read_corpus(" ".join(items))
        else:
            raise ProblemError("corpus", " ".join(items), "either plain text or only word:count items, not both")
    except ProblemError as error:
        raise _usage_error(error, "CORPUS", BPE_EXAMPLE) from None

    conventions = bpe.BPEConventions(bpe.EndOfWord(end_of_word), bpe.TieRule(tie_rule), min_count,
                                     bpe.UnseenPolicy(unseen))
    trace = bpe.train(words, num_merges=num_merges, target_vocab=vocab_size, conventions=conventions)
    known = bpe.training_characters(words)
    encodings = {word: bpe.encode(word, trace.merges, conventions, known) for word in to_encode}
    if as_json:
        click.echo(json.dumps(trace_to_dict(trace, encodings), indent=2, ensure_ascii=False))
        return
    click.echo(format_trace(trace, encodings))


def format_trace(trace: bpe.BPETrace, encodings: dict[str, list[str]]) -> str:
    lines = [
        "Corpus: " + ", ".join(f"{word} x{count}" for word, count in trace.words),
        "Conventions: " + ", ".join(f"{k}={v}" for k, v in trace.conventions.to_dict().items()),
        "Start: " + bpe.format_corpus(trace.initial_corpus),
        f"Initial vocabulary ({len(trace.initial_vocab)}): " + " ".join(trace.initial_vocab),
    ]
    for step in trace.steps:
        lines.append("")
        lines.append(f"Step {step.number}: pair counts")
        for pair, count in step.pair_counts:
            marker = "  <- max" if count == step.max_count else ""
            lines.append(f"  {bpe.format_pair(pair):<18} {count}{marker}")
        if step.is_tie:
            tied = ", ".join(bpe.format_pair(pair) for pair in step.tied)
            lines.append(f"  tie at {step.max_count} between {len(step.tied)} pairs: {tied}")
        lines.append(f"  merge: {bpe.format_pair(step.merge)} -> {step.new_symbol}")
        lines.append(f"  corpus: {bpe.format_corpus(step.corpus_after)}")
    lines.append("")
    lines.append(f"Stopped: {trace.stop_reason}.")
    lines.append("Merges: " + ", ".join(bpe.format_pair(pair) for pair in trace.merges))
    lines.append(f"Vocabulary size: {len(trace.initial_vocab)} -> {len(trace.vocab)}")
    lines.append("Segmentation:")
    for word, tokens in trace.segmentation().items():
        lines.append(f"  {word}: {' '.join(tokens)}")
    if encodings:
        lines.append("Encodings:")
        for word, tokens in encodings.items():
            lines.append(f"  {word}: {' '.join(tokens)}")
    return "\n".join(lines)


@click.command("backprop")
@click.option("--W", "W_text", required=True, help='Weights, K x D: "1 0; 2 -1" or "[[1, 0], [2, -1]]".')
@click.option("--x", "x_text", required=True, help='Input, D entries: "1 2".')
@click.option("--b", "b_text", help="Bias, K entries. Default: zeros.")
@click.option("--target", "target_text", required=True,
              help='One-hot target such as "1 0", or the class number counted from 1.')
@click.option("--lr", "lr_text", default="0.1", show_default=True, help="Learning rate of the SGD step.")
@click.option("--places", type=click.IntRange(0, 12), default=3, show_default=True,
              help="Decimal places of the decimal values.")
@click.option("--json", "as_json", is_flag=True, help="Print every quantity as JSON.")
def solve_backprop(W_text, x_text, b_text, target_text, lr_text, places, as_json):
    """One forward and backward pass through a softmax layer with cross-entropy loss.

    \b
    Example:
      mlexam solve backprop --W "1 0; 2 -1" --x "1 2" --b "0 0" --target "1 0"
    """
    import sympy

    from generator.backprop import SoftmaxProblem, solve_softmax, target_index
    from generator.exact import decimal_value, exact_text
    from generator.numbers import read_matrix, read_number, read_vector

    def read(param, reader, text):
        try:
            return reader(text, param.strip("-"))
        except ProblemError as error:
            raise _usage_error(error, param, BACKPROP_EXAMPLE) from None

    W = read("--W", read_matrix, W_text)
    x = read("--x", read_vector, x_text)
    b = read("--b", read_vector, b_text) if b_text else sympy.zeros(W.rows, 1)
    t = read("--target", read_vector, target_text)
    try:
        if len(t) == 1:
            number = int(t[0])
            if t[0] != number or not 1 <= number <= W.rows:
                raise ProblemError("target", target_text, f"a class number from 1 to {W.rows}, or a one-hot vector")
            target = number - 1
        else:
            target = target_index(t)
        problem = SoftmaxProblem(W, x, b, target, read("--lr", read_number, lr_text))
    except ProblemError as error:
        raise _usage_error(error, BACKPROP_OPTIONS.get(error.what, error.what), BACKPROP_EXAMPLE) from None

    quantities = solve_softmax(problem)
    if as_json:
        data = {"problem": problem.to_dict(), "decimal_places": places, "quantities": {
            name: {"label": q.label, "formula": q.formula, "exact": exact_text(q.value),
                   "decimal": decimal_value(q.value, places)}
            for name, q in quantities.items()}}
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    for name, q in quantities.items():
        click.echo(f"{q.label} = {q.formula}")
        click.echo(f"  exact:   {_readable(_flat(exact_text(q.value)))}")
        click.echo(f"  decimal: {_flat(decimal_value(q.value, places))}")
    sys.stdout.flush()


def _readable(text: str) -> str:
    """Write sympy's E as e and ** as ^, the way papers write them; --json keeps sympy's strings."""
    return re.sub(r"\bE\b", "e", text).replace("**", "^")


def _flat(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    return str(value)
