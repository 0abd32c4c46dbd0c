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
    rows = []
    for i in range(matrix.rows):
        cells = "".join(f"<td>{_expr(matrix[i, j])}</td>" for j in range(matrix.cols))
        if i == 0:
            cells = f'<td class="lb" rowspan="{matrix.rows}"></td>{cells}<td class="rb" rowspan="{matrix.rows}"></td>'
        rows.append(f"<tr>{cells}</tr>")
    return Markup(f'<table class="matrix">{"".join(rows)}</table>')


def _expr(expr: sympy.Basic) -> Markup:
    if expr.could_extract_minus_sign() and not expr.is_Add:
        return Markup(MINUS) + _wrap_if(-expr, lambda e: e.is_Add)
    if expr.is_Integer:
        return escape(str(expr))
    if expr.is_Rational:
        return _fraction(escape(str(expr.p)), escape(str(expr.q)))
    if expr.is_Float:
        return escape(str(expr))
    if expr is sympy.E:
        return Markup('<i>e</i>')
    if expr.is_Symbol:
        return Markup("<i>{}</i>").format(expr.name)
    if isinstance(expr, sympy.exp):
        return Markup('<i>e</i><sup>') + _expr(expr.args[0]) + Markup("</sup>")
    if isinstance(expr, sympy.log):
        return Markup("log(") + _expr(expr.args[0]) + Markup(")")
    if expr.is_Add:
        return _sum(expr)
    if expr.is_Mul:
        return _product(expr)
    if expr.is_Pow:
        return _power(expr)
    return escape(str(expr))


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
    return shown + Markup("<sup>") + _expr(exponent) + Markup("</sup>")


def _fraction(numerator: Markup, denominator: Markup) -> Markup:
    return Markup('<span class="frac"><span class="num">{}</span><span class="den">{}</span></span>').format(
        numerator, denominator)


def _wrap_if(expr: sympy.Basic, needs_brackets) -> Markup:
    inner = _expr(expr)
    return Markup("(") + inner + Markup(")") if needs_brackets(expr) else inner


def decimals_html(value: object) -> Markup:
    """Typeset decimal strings laid out as a scalar, a column vector (list) or a matrix (list of rows)."""
    if isinstance(value, list):
        rows = value if value and isinstance(value[0], list) else [[v] for v in value]
        cells = []
        for i, row in enumerate(rows):
            body = "".join(f"<td>{escape(str(v).replace('-', MINUS))}</td>" for v in row)
            if i == 0:
                body = f'<td class="lb" rowspan="{len(rows)}"></td>{body}<td class="rb" rowspan="{len(rows)}"></td>'
            cells.append(f"<tr>{body}</tr>")
        return Markup(f'<table class="matrix">{"".join(cells)}</table>')
    return escape(str(value).replace("-", MINUS))
