"""Source text -> syntax tree (rnndsl.lang.ast), with every syntax error reported.

The file is first split into statements (a newline ends a statement unless it
is inside brackets, or the pipeline goes on with `|` at the end of the line or
the start of the next), then each statement is parsed by one LALR parser that
is built once per process. Splitting first means a bad statement does not hide
the errors in the ones after it.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken, VisitError

from ..errors import DiagnosticSink, Pos
from . import ast

GRAMMAR_NAME = "rnn.lark"


def grammar_path() -> Path:
    """The shipped grammar: inside the installed package, else the source tree."""
    try:
        candidate = resources.files("rnndsl").joinpath("grammar").joinpath(GRAMMAR_NAME)
        if candidate.is_file():
            return Path(str(candidate))
    except (ModuleNotFoundError, FileNotFoundError, TypeError):
        pass
    here = Path(__file__).resolve().parents[2] / "grammar" / GRAMMAR_NAME
    if here.is_file():
        return here
    raise FileNotFoundError(f"rnndsl grammar {GRAMMAR_NAME} not found; reinstall rnndsl")


@functools.cache
def lark_parser() -> Lark:
    """The LALR parser, built once per process. Not cached on disk: Lark's cache is a
    pickle, which would run whatever code a planted file holds, and the tables take
    a twentieth of a second to build."""
    text = grammar_path().read_text(encoding="utf-8")
    # Two start symbols: `start` for every statement, `cell_def` for a statement that
    # begins `cell NAME(`; so `cell` is a keyword there only and still a plain name elsewhere.
    return Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=True,
                start=["start", "cell_def"])


# --------------------------------------------------------------------------------------
# splitting into statements


def split_statements(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each statement; comments and blank lines belong to none."""
    spans: list[tuple[int, int]] = []
    depth = 0
    start = None
    in_cell = False        # the current statement is a cell definition
    last_sig = ""          # last significant character seen in the current statement
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if ch in "\"'":
            quote, j = ch, i + 1
            while j < n and text[j] != quote and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            if start is None:
                start = i
            last_sig = quote
            i = j + 1
            continue
        if ch == "\\" and text[i + 1:i + 2] == "\n":
            i += 2
            continue
        if ch == "\n":
            ends = depth <= 0 and last_sig != "|" and not _next_line_continues(text, i + 1)
            # Inside a cell body `name = ...` is an equation, not a new statement.
            pattern = _CELL_BODY_BREAK if (in_cell and depth > 0) else _STATEMENT_START
            if start is not None and (ends or pattern.match(text, i + 1)):
                spans.append((start, i))
                start, depth, last_sig = None, 0, ""
            i += 1
            continue
        if not ch.isspace():
            if start is None:
                start = i
                in_cell = bool(CELL_START.match(text, i))
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
            last_sig = ch
        i += 1
    if start is not None:
        spans.append((start, len(text.rstrip())))
    return spans


# An unindented `input`, `output`, `train` or `name =` starts a new statement even
# when a bracket above was left open, so one missing ')' does not swallow the rest.
_STATEMENT_START = re.compile(r"(input|output|train)\b|cell\s+[A-Za-z_]|[A-Za-z_]\w*\s*=[^=]")
# Inside a cell body only the keywords do (equations look like bindings).
_CELL_BODY_BREAK = re.compile(r"(input|output|train)\b|cell\s+[A-Za-z_]")
# A statement that is a cell definition: `cell NAME(`.
CELL_START = re.compile(r"cell\s+[A-Za-z_]\w*\s*\(")


def _next_line_continues(text: str, i: int) -> bool:
    """Whether the next line with code starts with `|` (a pipeline continued)."""
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t\r\f":
            i += 1
        if i < n and text[i] == "#":
            while i < n and text[i] != "\n":
                i += 1
        if i < n and text[i] == "\n":
            i += 1
            continue
        return i < n and text[i] == "|"
    return False


# --------------------------------------------------------------------------------------
# lark tree -> ast


class _ToAst(Transformer):
    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _pos(self, meta) -> Pos:
        if getattr(meta, "empty", True):
            return Pos(self.file, 0, 0)
        end = meta.end_column if meta.end_line == meta.line else None
        return Pos(self.file, meta.line, meta.column, end)

    def _tok(self, tok: Token) -> Pos:
        return Pos(self.file, tok.line, tok.column, tok.end_column)

    @v_args(meta=True)
    def start(self, meta, items):
        return items[0]

    @v_args(meta=True)
    def input_decl(self, meta, items):
        name, (dtype, dims, type_pos) = items
        return ast.InputDecl(str(name), dtype, dims, self._tok(name), type_pos)

    @v_args(meta=True)
    def type_expr(self, meta, items):
        return (str(items[0]), list(items[1:]), self._pos(meta))

    def dim_int(self, items):
        return int(items[0])

    def dim_var(self, items):
        return None

    @v_args(meta=True)
    def binding(self, meta, items):
        return ast.Binding(str(items[0]), items[1], self._tok(items[0]))

    @v_args(meta=True)
    def named_output(self, meta, items):
        return ast.Output(str(items[0]), items[1], self._pos(meta))

    @v_args(meta=True)
    def output_stmt(self, meta, items):
        return ast.Output(None, items[0], self._pos(meta))

    @v_args(meta=True)
    def bare_output(self, meta, items):
        return ast.Output(None, items[0], self._pos(meta))

    @v_args(meta=True)
    def pipeline(self, meta, items):
        return ast.Pipeline(list(items), self._pos(meta))

    @v_args(meta=True)
    def call(self, meta, items):
        name, *args = items
        return ast.Call(str(name), [a for a in args if a is not None], self._tok(name))

    @v_args(meta=True)
    def ref(self, meta, items):
        return ast.Ref([str(t) for t in items], self._pos(meta))

    @v_args(meta=True)
    def kwarg(self, meta, items):
        return ast.Arg(str(items[0]), items[1], self._tok(items[0]))

    @v_args(meta=True)
    def posarg(self, meta, items):
        value = items[0]
        return ast.Arg(None, value, value.pos)

    @v_args(meta=True)
    def int(self, meta, items):
        return ast.Num(int(items[0]), self._tok(items[0]))

    @v_args(meta=True)
    def float(self, meta, items):
        return ast.Num(float(items[0]), self._tok(items[0]))

    @v_args(meta=True)
    def string(self, meta, items):
        raw = str(items[0])[1:-1]
        return ast.Str(bytes(raw, "utf-8").decode("unicode_escape") if "\\" in raw else raw,
                       self._tok(items[0]))

    @v_args(meta=True)
    def true(self, meta, items):
        return ast.Bool(True, self._pos(meta))

    @v_args(meta=True)
    def false(self, meta, items):
        return ast.Bool(False, self._pos(meta))

    @v_args(meta=True)
    def list(self, meta, items):
        return ast.ListValue([v for v in items if v is not None], self._pos(meta))

    @v_args(meta=True)
    def train_block(self, meta, items):
        return ast.TrainBlock([s for s in items if s is not None], self._pos(meta))

    @v_args(meta=True)
    def setting(self, meta, items):
        return ast.Setting(str(items[0]), items[1], self._tok(items[0]))

    # --- custom cells ---------------------------------------------------------------
    @v_args(meta=True)
    def cell_def(self, meta, items):
        calls = [i for i in items if isinstance(i, ast.Call)]
        equations = [i for i in items if isinstance(i, ast.Equation)]
        return ast.CellDef(calls[0], calls[1:], equations, calls[0].pos)

    @v_args(meta=True)
    def equation(self, meta, items):
        return ast.Equation(str(items[0]), items[1], self._tok(items[0]))

    def _bin(op):
        @v_args(meta=True)
        def make(self, meta, items):
            return ast.EBinary(op, items[0], items[1], self._pos(meta))
        return make

    e_add, e_sub, e_mul, e_div, e_matmul = _bin("+"), _bin("-"), _bin("*"), _bin("/"), _bin("@")
    del _bin

    @v_args(meta=True)
    def e_neg(self, meta, items):
        return ast.EUnary("-", items[0], self._pos(meta))

    @v_args(meta=True)
    def e_var(self, meta, items):
        return ast.EVar(str(items[0]), self._tok(items[0]))

    @v_args(meta=True)
    def e_int(self, meta, items):
        return ast.ENum(float(int(items[0])), self._tok(items[0]))

    @v_args(meta=True)
    def e_float(self, meta, items):
        return ast.ENum(float(items[0]), self._tok(items[0]))

    @v_args(meta=True)
    def e_call(self, meta, items):
        name, *args = items
        return ast.ECall(str(name), [a for a in args if a is not None], self._pos(meta), self._tok(name))


# --------------------------------------------------------------------------------------
# errors

_TOKEN_WORDS = {
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'",
    "RBRACE": "'}'", "COMMA": "','", "VBAR": "'|'", "EQUAL": "'='", "COLON": "':'",
    "DOT": "'.'", "SEMICOLON": "';'", "QMARK": "'?'", "NAME": "a name", "INT": "a whole number",
    "FLOAT": "a number", "STRING": "a string", "TRUE": "true", "FALSE": "false",
    "$END": "the end of the statement",
    "PLUS": "'+'", "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'", "AT": "'@'", "CELL": "cell",
}
# Operators of cell equations: anywhere else they are stray characters.
_CELL_OPERATORS = ("PLUS", "MINUS", "STAR", "SLASH", "AT")


def _describe_expected(expected) -> str:
    words = sorted({_TOKEN_WORDS.get(t, t.lower()) for t in expected if not t.startswith("__")})
    if len(words) > 6:
        words = words[:6] + ["..."]
    return ", ".join(words)


def _syntax_hint(token_type: str, expected: set, statement: str) -> str | None:
    if token_type == "$END":
        opens = statement.count("(") - statement.count(")")
        if opens > 0:
            return "a '(' is not closed: add ')'"
        if statement.count("[") > statement.count("]"):
            return "a '[' is not closed: add ']'"
        if statement.count("{") > statement.count("}"):
            if CELL_START.match(statement):
                return "the cell body is not closed: add '}'"
            return "the train block is not closed: add '}'"
        if "NAME" in expected or "LPAR" in expected:
            return "the statement stops short: a layer or a name is missing"
    if "VBAR" in expected and token_type in ("NAME", "LPAR"):
        return "join the stages of a pipeline with '|', e.g. `x | lstm(64) | dense(10)`"
    if "RPAR" in expected and "COMMA" in expected:
        return "separate arguments with ',' and close the call with ')'"
    if CELL_START.match(statement):
        if token_type == "NAME" and expected & {"PLUS", "STAR", "AT"}:
            return "put an operator (+ - * / @) between two terms, or start a new equation on a new line"
        if token_type == "LBRACE" or "LBRACE" in expected:
            return "a cell is `cell name(units) { h = ... }`, optionally with state(h, c), inputs(x1, x2), init(w = ones)"
        return None
    if token_type == "EQUAL":
        return "'=' binds a name at the start of a statement (`enc = x | lstm(64)`) or sets an option inside a call"
    return None


def parse(text: str, file: str = "<spec>") -> ast.Spec:
    """Parse a whole spec; raises SpecError listing every syntax error."""
    sink = DiagnosticSink(text, file)
    parser = lark_parser()
    statements: list[ast.Statement] = []
    for start, end in split_statements(text):
        line = text.count("\n", 0, start) + 1
        col = start - (text.rfind("\n", 0, start) + 1)
        chunk = "\n" * (line - 1) + " " * col + text[start:end]
        is_cell = bool(CELL_START.match(text, start))
        try:
            tree = parser.parse(chunk, start="cell_def" if is_cell else "start")
            statements.append(_ToAst(file).transform(tree))
        except UnexpectedCharacters as e:
            ch = chunk[e.pos_in_stream] if e.pos_in_stream < len(chunk) else "?"
            hint = "strings use double quotes" if ch == "`" else None
            if ch == "-" or ch == ">":
                hint = "stages of a pipeline are joined with '|'"
            sink.error(Pos(file, e.line, e.column), f"unexpected character {ch!r}", hint)
        except UnexpectedToken as e:
            tok = e.token
            if tok.type in _CELL_OPERATORS and not is_cell:
                # an arithmetic operator outside a cell is a stray character, as before cells existed
                hint = "stages of a pipeline are joined with '|'" if tok.value == "-" else None
                sink.error(Pos(file, tok.line, tok.column, tok.end_column), f"unexpected character {tok.value!r}", hint)
                continue
            if tok.type == "$END":
                last_line = text.count("\n", 0, end) + 1
                last_col = end - (text.rfind("\n", 0, end) + 1) + 1
                pos = Pos(file, last_line, last_col)
                found = "the statement ends"
            else:
                pos = Pos(file, tok.line, tok.column, tok.end_column)
                found = f"unexpected {tok.value!r}"
            expected = set(e.expected)
            sink.error(pos, f"{found}; expected {_describe_expected(expected)}",
                       _syntax_hint(tok.type, expected, text[start:end]))
        except UnexpectedEOF:  # pragma: no cover - lalr reports UnexpectedToken($END)
            sink.error(Pos(file, line, col + 1), "unexpected end of input")
        except VisitError as e:  # pragma: no cover - a transformer bug, not a user error
            raise e.orig_exc
    sink.raise_if_any()
    return ast.Spec(statements, file, text)
