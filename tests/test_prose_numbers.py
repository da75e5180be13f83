"""Every number the prose of a notebook states is a number the notebook printed.

For each committed notebook (notebooks/NN-*.ipynb, read as committed: nothing is executed),
every decimal number (``1.506``, ``0.033``, ``3.30``, ``2.0e-11``, the ``50.2`` of
``50.2 %``) and every number written with thousands separators (``73,793``) in a markdown
cell must occur, as written, in the text of one of the notebook's code cells or outputs.
"As written" means at the printed precision: ``1.50`` does not match a printed ``1.5``.
Thousands separators are the one thing normalised, so ``179,692`` in the prose matches
``179692``, ``179_692`` or ``179,692`` in code or output.

Plain integers are not checked: they are mostly ordinals, sizes and counts of things named in
the text. Not checked either: URLs and link targets, MyST roles (citations, equation and
figure references), code spans, fenced code blocks that are not directives, directive options
(``:width: 640px``), HTML comments, and the exact constants listed in ``ALLOWED`` below.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))

# Exact constants of mathematics that the prose may state without a printout. Keep these
# lists short and say what each number is.
ALLOWED = {
    "0.5",  # one half (a coin flip, a halving factor, an entry of a worked 2 x 2 example)
    "0.25",  # one quarter: the largest derivative of the logistic sigmoid
    "0.693",  # ln 2: a value in bits times ln 2 is the value in nats
    "1.443",  # 1 / ln 2: bits per nat
}
# Constants that are only exact next to the expression they evaluate: a pattern of the
# expression with its value, so that the same digits elsewhere are still checked.
ALLOWED_EXPRESSIONS = [
    r"\\sigma\(1\)\s*(?:\\approx|≈|=)\s*0\.73",  # logistic sigmoid at 1: 0.731
    r"\\sigma\(3\)\s*(?:\\approx|≈|=)\s*0\.95",  # logistic sigmoid at 3: 0.953
    r"\\ln\s*2\s*(?:\\approx|≈|=)\s*0\.69\d*",  # ln 2 = 0.6931
]
# A version or edition is a name, not a measurement: "License 1.0", "Python 3.10".
_VERSION = re.compile(r"\b(?:[Vv]ersion|[Ll]icen[cs]e|Python|PyTorch|CUDA|ODbL)\s+\d+(?:\.\d+)+")

# --- extracting the numbers of the prose ----------------------------------------------------

# a number: digits with optional thousands separators, optional decimals, optional exponent;
# not part of a longer dotted sequence (a version "2.13.0" or a section "9.3.1"), not glued to
# letters or underscores (an identifier such as x2 or a label such as fig-2.5), not after "§"
_NUMBER = re.compile(
    r"(?<![\w.§])"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d+)"
    r"(?P<exp>[eE][+-]?\d+)?"
    r"(?![\w]|\.\d)"
)
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
_ROLE = re.compile(r"\{[\w:.-]+\}`[^`]*`")  # {cite}`x`, {eq}`x`, {numref}`x`, {cite:t}`x`
_CODE_SPAN = re.compile(r"``[^`]+``|`[^`]+`")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"<?https?://[^\s)>]+>?")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_EQ_LABEL = re.compile(r"\$\$\s*\([\w:.-]+\)")  # the "(eq-label)" after a display equation
_TARGET = re.compile(r"^\s*\([\w:.-]+\)=\s*$", re.M)  # MyST targets "(label)="
_OPTION = re.compile(r"^\s*:[\w-]+:.*$", re.M)  # directive options ":width: 640px"


def _prose(markdown: str) -> str:
    """The prose of a markdown cell: what a reader reads as text or math, without code."""
    lines, open_fences = [], []  # stack of (fence, is_code) for the fenced blocks we are in
    for line in markdown.splitlines():
        m = _FENCE.match(line)
        if m:
            fence, info = m.group(2), m.group(3).strip()
            top = open_fences[-1][0] if open_fences else None
            if top and not info and fence[0] == top[0] and len(fence) >= len(top):
                open_fences.pop()  # closes the innermost block
            else:  # opens a block: a directive ({figure}, {admonition}) or code (```python)
                open_fences.append((fence, not info.startswith("{")))
            continue
        if not any(is_code for _, is_code in open_fences):
            lines.append(line)
    text = "\n".join(lines)
    text = _COMMENT.sub(" ", text)
    text = _OPTION.sub(" ", text)
    text = _TARGET.sub(" ", text)
    text = _EQ_LABEL.sub("$$", text)
    text = _ROLE.sub(" ", text)
    text = _CODE_SPAN.sub(" ", text)
    text = _IMAGE.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    text = _VERSION.sub(" ", text)
    for pattern in ALLOWED_EXPRESSIONS:
        text = re.sub(pattern, " ", text)
    # LaTeX writes thousands separators as 179{,}692 or 179\,692
    text = re.sub(r"(?<=\d)(?:\{,\}|\\,)(?=\d{3}(?!\d))", ",", text)
    return _drop_checked_arithmetic(text)


_INT = r"\d{1,3}(?:,\d{3})+|\d+"
_SUM = re.compile(rf"(?<![\d.,])((?:{_INT})(?:\s*\+\s*(?:{_INT}))+)\s*=\s*({_INT})(?![\d.])")
_RATIO = re.compile(r"(?<![\d.])(\d+)\s*/\s*(\d+)\s*=\s*(\d+\.\d+)(?!\d)")


def _drop_checked_arithmetic(text: str) -> str:
    """Remove the terms of arithmetic the prose works out and that checks: the addends of
    "768 + 49,408 + 8,224 = 58,400" (the total stays, and must be printed) and a fraction's value
    "1/8 = 0.125". Arithmetic that does not check is left alone, so its numbers are still tested."""
    def total(m):
        terms = [int(t.replace(",", "")) for t in re.split(r"\s*\+\s*", m.group(1))]
        return f" = {m.group(2)}" if sum(terms) == int(m.group(2).replace(",", "")) else m.group(0)

    def ratio(m):
        a, b, value = int(m.group(1)), int(m.group(2)), m.group(3)
        decimals = len(value.split(".")[1])
        return " " if b and f"{a / b:.{decimals}f}" == value else m.group(0)

    return _RATIO.sub(ratio, _SUM.sub(total, text))


def prose_numbers(markdown: str) -> list[str]:
    """The decimal and thousands-separated numbers a markdown cell states, in order."""
    found = []
    for m in _NUMBER.finditer(_prose(markdown)):
        number = m.group("num") + (m.group("exp") or "")
        if "." in m.group("num") or "," in m.group("num"):
            found.append(number)
    return found


# --- the evidence: what the notebook's code and outputs say ---------------------------------

_TEXT_MIMES = ("text/plain", "text/markdown", "text/html", "text/latex")


def _normalise(text: str) -> str:
    """Drop thousands separators (',' or '_' followed by exactly three digits)."""
    return re.sub(r"(?<=\d)[,_](?=\d{3}(?!\d))", "", text)


def evidence(nb) -> str:
    """All code and all textual outputs of a notebook, thousands separators removed."""
    parts = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        parts.append(cell.source)
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append(out["text"] if isinstance(out["text"], str) else "".join(out["text"]))
            for mime in _TEXT_MIMES:
                data = out.get("data", {}).get(mime)
                if data:
                    parts.append(data if isinstance(data, str) else "".join(data))
    return _normalise("\n".join(parts))


def unprinted_numbers(nb) -> list[tuple[int, str, str]]:
    """(cell number, number, context) for each number of the prose found in no code or output."""
    shown = evidence(nb)
    missing = []
    for i, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "markdown":
            continue
        for number in prose_numbers(cell.source):
            if number in ALLOWED:
                continue
            needle = re.escape(_normalise(number))
            if not re.search(rf"(?<![\d.]){needle}(?!\d)", shown):
                at = cell.source.find(number)
                context = " ".join(cell.source[max(0, at - 50):at + len(number) + 30].split())
                missing.append((i, number, context))
    return missing


# --- the checks -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_number_in_the_prose_is_printed(path):
    missing = unprinted_numbers(nbformat.read(path, as_version=4))
    assert not missing, f"{path.name}: numbers stated in the prose but printed nowhere:\n" + "\n".join(
        f"  cell {i}: {number}   ...{context}..." for i, number, context in missing)


def _notebook(markdown: list[str], printed: list[str], code: str = "print(x)"):
    nb = nbformat.v4.new_notebook()
    for text in markdown:
        nb.cells.append(nbformat.v4.new_markdown_cell(text))
    cell = nbformat.v4.new_code_cell(code)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in printed]
    nb.cells.append(cell)
    return nb


def test_checker_catches_a_planted_wrong_number():
    nb = _notebook(["The model reaches 1.506 nats, against 1.507 for the baseline (0.033 better)."],
                   ["model 1.506 nats, baseline 1.539, difference 0.033\n"])
    assert [number for _, number, _ in unprinted_numbers(nb)] == ["1.507"]


def test_checker_accepts_arithmetic_that_checks_and_nothing_else():
    nb = _notebook(["That is $768 + 49{,}408 + 8{,}224 = 58{,}400$, and chance is $1/8 = 0.125$."],
                   ["58,400 parameters\n"])
    assert unprinted_numbers(nb) == []
    nb = _notebook(["That is $768 + 49{,}408 + 8{,}225 = 58{,}400$, and chance is $1/8 = 0.126$."],
                   ["58,400 parameters\n"])
    assert [number for _, number, _ in unprinted_numbers(nb)] == ["49,408", "8,225", "0.126"]
    nb = _notebook(["That is $768 + 49{,}408 + 8{,}224 = 58{,}400$."], ["58,401 parameters\n"])
    assert [number for _, number, _ in unprinted_numbers(nb)] == ["58,400"]


def test_checker_requires_the_printed_precision():
    nb = _notebook(["A loss of 1.50 nats, or 4.51 bits."], ["loss 1.5 nats, 4.512 bits\n"])
    assert [number for _, number, _ in unprinted_numbers(nb)] == ["1.50", "4.51"]


def test_checker_reads_thousands_separators_percentages_and_exponents():
    text = ("The book has 179,692 characters ($179{,}692$), 50.2 % of them vowels; "
            "the gradient falls to 2.0e-11 and 73,793 names remain.")
    nb = _notebook([text], ["179692 characters, 50.2% vowels, 2.0e-11\n"], code="n = 73_793")
    assert unprinted_numbers(nb) == []
    nb = _notebook([text], ["179692 characters, 50.3% vowels, 2.0e-12\n"])
    assert [number for _, number, _ in unprinted_numbers(nb)] == ["50.2", "2.0e-11", "73,793"]


def test_checker_skips_what_is_not_a_stated_number():
    text = """See [section nine](https://d2l.ai/chapter_9/9.3.html), {cite}`pascanu2013` and
{eq}`eq-2.5`; PyTorch 2.13.0, §9.3, `lr = 0.005`, and <https://example.org/v1.5>.
<!-- draft: 7.77 -->

```python
loss = 8.88
```

```{figure} ../img/x.svg
:width: 6.5in
:name: fig-3.1

One nat is $1/\\ln 2 \\approx 1.443$ bits.
```

$$
x = 0.5 y
$$ (eq-1.2)
"""
    assert prose_numbers(text) == ["1.443", "0.5"]
    assert unprinted_numbers(_notebook([text], [""])) == []


def test_checker_reads_directive_bodies_and_math():
    text = """```{admonition} Solution
:class: dropdown

The floor is $1/13 \\approx 0.077$ bits, and $\\ln 27 \\approx 3.30$ nats.
```"""
    assert prose_numbers(text) == ["0.077", "3.30"]
    nb = _notebook([text], ["floor 0.077\n"])
    assert [number for _, number, _ in unprinted_numbers(nb)] == ["3.30"]


def test_checker_skips_versions_and_allowed_expressions_only_in_place():
    text = ("Open Database License 1.0, Python 3.10; a forget gate at $\\sigma(3) \\approx 0.95$ "
            "keeps 0.95 of the cell.")
    assert prose_numbers(text) == ["0.95"]
