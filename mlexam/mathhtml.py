"""Typeset sympy values as HTML and CSS that WeasyPrint lays out: stacked fractions,
superscript exponents and bracketed matrices, never raw LaTeX.

Every piece of text passes through `markupsafe.escape`, so the result is safe to
insert into a template as `Markup`.
"""

from __future__ import annotations

from decimal import Decimal

import sympy
from markupsafe import Markup, escape

MINUS = "\u2212"


def math_html(value: object) -> Markup:
    """Typeset a sympy scalar or matrix, a number, or an operator string."""
    if isinstance(value, str):
        return Markup('<span class="op">{}</span>').format(value)
    if isinstance(value, sympy.MatrixBase):
        return _matrix(value)
    if isinstance(value, (int, float)):
        value = sympy.sympify(value)
    return Markup('<span class="math">') + _expr(value) + Markup("</span>")


def given_html(value: object) -> Markup:
    """Typeset a given number as the paper states it: 1/10 as 0.1, and 1/3 as a fraction."""
    if isinstance(value, sympy.Rational) and not value.is_Integer:
        denominator = int(value.q)
        while denominator % 2 == 0:
            denominator //= 2
        while denominator % 5 == 0:
            denominator //= 5
        if denominator == 1:
            exact = Decimal(int(value.p)) / Decimal(int(value.q))
            return escape(format(exact.normalize(), "f").replace("-", MINUS))
    return math_html(value)


def sequence_html(items: list) -> Markup:
    """Typeset a substitution such as [W, x, "+", b] with thin spaces between the items."""
    return Markup(" ").join(math_html(item) for item in items)


def _matrix(matrix: sympy.MatrixBase) -> Markup:
    factored = _common_denominator(matrix)
    if factored is not None:
        denominator, numerators = factored
        return (Markup('<span class="factored">') + _fraction(Markup("1"), _expr(denominator)) + Markup("\u2009")
                + _matrix(numerators) + Markup("</span>"))
    return _matrix_table([[_expr(matrix[i, j]) for j in range(matrix.cols)] for i in range(matrix.rows)])


def _common_denominator(matrix: sympy.MatrixBase) -> tuple[sympy.Basic, sympy.MatrixBase] | None:
    """Return (d, N) with matrix = N / d when two or more entries are fractions over the same d and the rest are 0.

    An examiner writes [1/(2+e), -2/(2+e)] as 1/(2+e) [1, -2]. With one fraction in front of
    each such matrix, the practice key renders in about a tenth less time (measured).
    Entries that are sums, such as 1 + 1/(10 (1 + e)), are left as they are.
    """
    denominator = None
    numerators = []
    for entry in matrix:
        if entry == 0:
            numerators.append(entry)
            continue
        if entry.is_Add:
            return None
        numerator, entry_denominator = sympy.fraction(entry, exact=True)
        if entry_denominator == 1 or (denominator is not None and entry_denominator != denominator):
            return None
        denominator = entry_denominator
        numerators.append(numerator)
    if sum(1 for n in numerators if n != 0) < 2:
        return None
    return denominator, sympy.Matrix(matrix.rows, matrix.cols, numerators)


def _matrix_table(rows: list[list[Markup]]) -> Markup:
    """Lay out a matrix whose box's own side borders draw the brackets.

    A matrix of plain numbers is preformatted text, one element per column and one line
    per row, which WeasyPrint lays out faster than a table. Cells with fractions or
    exponents need a table.
    """
    if all("<" not in cell for row in rows for cell in row):
        columns = [[row[j] for row in rows] for j in range(len(rows[0]))]
        if len(columns) == 1:
            return Markup(f'<span class="matrix plain"{_width_style(columns[0])}>' + "\n".join(columns[0]) + "</span>")
        body = "".join(f'<span class="col"{_width_style(column)}>' + "\n".join(column) + "</span>" for column in columns)
        return Markup(f'<span class="matrix plain">{body}</span>')
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return Markup(f'<table class="matrix">{body}</table>')


def _expr(expr: sympy.Basic) -> Markup:
    if expr.is_Mul:
        expr = _without_double_minus(expr)
    if expr.could_extract_minus_sign() and not expr.is_Add:
        return Markup(MINUS) + _wrap_if(-expr, lambda e: e.is_Add)
    if expr.is_Integer:
        return escape(str(expr))
    if expr.is_Rational:
        return _fraction(escape(str(expr.p)), escape(str(expr.q)))
    if expr.is_Float:
        return escape(str(expr))
    if expr is sympy.E:
        return Markup("e")
    if expr.is_Symbol:
        return Markup("<i>{}</i>").format(expr.name)
    if isinstance(expr, sympy.exp):
        return Markup("e<sup>") + _exponent(expr.args[0]) + Markup("</sup>")
    if isinstance(expr, sympy.log):
        return Markup("log(") + _expr(expr.args[0]) + Markup(")")
    if expr.is_Add:
        return _sum(expr)
    if expr.is_Mul:
        return _product(expr)
    if expr.is_Pow:
        return _power(expr)
    return escape(str(expr))


def _without_double_minus(expr: sympy.Mul) -> sympy.Basic:
    """Write -c (-a - b) d as c (a + b) d, so that no minus sign appears before a bracket of negative terms."""
    coefficient, factors = expr.as_coeff_mul()
    if not coefficient.is_negative:
        return expr
    for index, factor in enumerate(factors):
        if factor.is_Add and factor.could_extract_minus_sign():
            flipped = [*factors[:index], -factor, *factors[index + 1:]]
            if coefficient != -1:
                flipped.insert(0, -coefficient)
            return sympy.Mul(*flipped, evaluate=False)
    return expr


def _sum(expr: sympy.Add) -> Markup:
    parts: list[Markup] = []
    for index, term in enumerate(_ordered_terms(expr)):
        negative = term.could_extract_minus_sign()
        body = _expr(-term if negative else term)
        if index == 0:
            parts.append(Markup(MINUS) + body if negative else body)
        else:
            parts.append(Markup(f" {MINUS} " if negative else " + ") + body)
    return Markup("").join(parts)


def _ordered_terms(expr: sympy.Add) -> list[sympy.Basic]:
    """Return the terms of a sum with the constant first and exponentials by rising exponent, as 1 + e + e²."""
    def key(term: sympy.Basic) -> tuple:
        if term.is_number and not term.has(sympy.exp, sympy.E):
            return (0, 0, str(term))
        base = term.as_coeff_Mul()[1]
        if isinstance(base, sympy.exp):
            exponent = base.args[0]
        elif base is sympy.E:
            exponent = sympy.Integer(1)
        else:
            exponent = None
        if exponent is not None and exponent.is_number:
            return (1, float(exponent), str(term))
        return (2, 0, str(term))
    return sorted(expr.args, key=key)


def _product(expr: sympy.Mul) -> Markup:
    numerator, denominator = sympy.fraction(expr, exact=True)
    if denominator != 1:
        return _fraction(_expr(numerator), _expr(denominator))
    coefficient, rest = expr.as_coeff_Mul()
    factors = [] if coefficient == 1 else [_expr(coefficient)]
    for factor in sympy.Mul.make_args(rest):
        factors.append(_wrap_if(factor, lambda e: e.is_Add))
    return Markup("\u2009").join(factors)


def _power(expr: sympy.Pow) -> Markup:
    base, exponent = expr.args
    if exponent == sympy.Rational(1, 2):
        return Markup('√<span class="radicand">') + _expr(base) + Markup("</span>")
    if exponent.is_negative:
        return _fraction(Markup("1"), _expr(base ** -exponent))
    shown = _wrap_if(base, lambda e: e.is_Add or e.is_Mul or e.is_Pow or (e.is_Rational and not e.is_Integer))
    return shown + Markup("<sup>") + _exponent(exponent) + Markup("</sup>")


def _exponent(expr: sympy.Basic) -> Markup:
    """Typeset an exponent, with a rational one written inline as 11/2, the way superscripts are set."""
    if expr.is_Rational and not expr.is_Integer:
        sign = MINUS if expr.is_negative else ""
        return escape(f"{sign}{abs(expr.p)}/{expr.q}")
    return _expr(expr)


def _fraction(numerator: Markup, denominator: Markup) -> Markup:
    # The denominator needs no element of its own: after the block numerator it forms an anonymous block.
    style = _width_style([numerator, denominator])
    return Markup('<span class="frac"{}><span class="num">{}</span>{}</span>').format(Markup(style), numerator, denominator)


# Advance widths in em of the characters of numbers and simple terms, in DejaVu Serif (the
# stylesheet's text font), read from the font's hmtx table.
_ADVANCE_EM = {
    **dict.fromkeys("0123456789", 0.6362), ".": 0.3179, " ": 0.3179, "\u2009": 0.1997,
    MINUS: 0.8379, "+": 0.8379, "e": 0.5918, "(": 0.3901, ")": 0.3901,
}


def _width_style(lines: list[str]) -> str:
    """Return a style attribute that sets the width of a box of plain text lines, or "" when a line has other characters.

    With a set width, WeasyPrint does not measure the text to size the box. Shrink-to-fit
    measured each column of a matrix and each fraction several times. The 2% and 0.05 em
    of slack cover DejaVu Serif's kerning.
    NOTE: with another text font the widths are not measured, so text can overflow its box.
    """
    widths = []
    for line in lines:
        # Markup (`<sup>`, `&lt;`) has characters outside the table, so it gets no set width.
        if any(char not in _ADVANCE_EM for char in line):
            return ""
        widths.append(sum(_ADVANCE_EM[char] for char in line))
    return f' style="width: {max(widths) * 1.02 + 0.05:.2f}em"'


def _wrap_if(expr: sympy.Basic, needs_brackets) -> Markup:
    inner = _expr(expr)
    return Markup("(") + inner + Markup(")") if needs_brackets(expr) else inner


def decimals_html(value: object) -> Markup:
    """Typeset decimal strings laid out as a scalar, a column vector (list) or a matrix (list of rows)."""
    if isinstance(value, list):
        rows = value if value and isinstance(value[0], list) else [[v] for v in value]
        return _matrix_table([[escape(str(v).replace("-", MINUS)) for v in row] for row in rows])
    return escape(str(value).replace("-", MINUS))


# Characters of monospace text that fit on a line of the page body, with room to spare.
COUNTS_LINE_CHARS = 84


def pair_counts_html(pair_counts: list, max_count: int) -> Markup:
    """Typeset BPE pair counts as monospace columns in one preformatted block, the maximum counts in bold.

    Each entry reads `a b: n`. A CSS grid with one element per entry took about a tenth of the practice key's layout time.
    """
    entries = [(f"{left} {right}: {count}", count == max_count) for (left, right), count in pair_counts]
    width = max((len(text) for text, _ in entries), default=0) + 3
    per_line = max(1, min(4, COUNTS_LINE_CHARS // width))
    lines = []
    for start in range(0, len(entries), per_line):
        cells = []
        for text, is_max in entries[start:start + per_line]:
            cell = Markup("<b>{}</b>").format(text) if is_max else escape(text)
            cells.append(cell + " " * (width - len(text)))
        lines.append(Markup("").join(cells).rstrip())
    return Markup('<div class="counts">') + Markup("\n").join(lines) + Markup("</div>")

