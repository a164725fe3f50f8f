"""Source text -> syntax tree (rnndsl.lang.ast), with every syntax error reported.

The file is first split into statements (a newline ends a statement unless it
is inside brackets, or the pipeline goes on with `|` at the end of the line or
the start of the next), then each statement is parsed by one LALR parser that
is built once per process. Splitting first means a bad statement does not hide
the errors in the ones after it.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

from ..errors import Diagnostic, DiagnosticSink, Pos, SpecError, clip
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
# limits: a spec is a short text; these bound the time and memory a hostile one can take

MAX_NESTING = 50             # brackets inside brackets
MAX_DEPTH = 200              # levels of one statement's syntax tree (operators chained in an equation)
MAX_STATEMENTS = 10_000      # statements in a spec (a cell's equations count as one)
MAX_TOKENS = 60_000          # names, numbers, strings and symbols in a spec
MAX_INT = 2**63 - 1          # the largest whole number a spec may write
MAX_NAME = 200               # characters of a name
MAX_SPEC_BYTES = 8 * 2**20   # a spec file (or text) of at most 8 MiB


# --------------------------------------------------------------------------------------
# splitting into statements

# One pass over the text, a piece at a time: a run of newlines with the blank and comment
# lines between them, a comment, a string, a line continuation, a bracket, spaces, or a run
# of other characters. (Possessive repeats, *+ and ++: a megabyte of blank lines or one long
# string must not make the regex engine keep a backtracking point per character.)
_SCAN = re.compile(r"""
    (?P<nl>\n(?:[^\S\n]*+(?:\#[^\n]*+)?+\n)*+)
  | (?P<cm>\#[^\n]*)
  | (?P<st>"(?:[^"\\\n]++|\\.)*+"?|'(?:[^'\\\n]++|\\.)*+'?)
  | (?P<lc>\\\r?\n)
  | (?P<op>[(\[{])
  | (?P<cl>[)\]}])
  | (?P<sp>[^\S\n]+)
  | (?P<tx>[^\s\#"'\\()\[\]{}]+|\\)
""", re.VERBOSE)
_WORDS = re.compile(r"[\w.]+|[^\w\s]")
_SPACES = re.compile(r"[^\S\n]*")


@dataclass
class _Span:
    start: int
    end: int = -1
    cell: bool = False
    too_deep: int | None = None     # offset of the first bracket nested deeper than MAX_NESTING


@dataclass
class _Scan:
    spans: list[_Span]
    over: str | None = None          # "statements" or "tokens": the scan stopped at a limit
    over_at: int = 0                 # where


def _scan(text: str) -> _Scan:
    """The statements of a spec, in one pass (linear in the text's length)."""
    spans: list[_Span] = []
    cur: _Span | None = None
    depth = 0
    last_sig = ""                    # last significant character of the current statement
    tokens = 0
    for m in _SCAN.finditer(text):
        kind = m.lastgroup
        i = m.start()
        if kind == "nl":
            if cur is None:
                continue
            j = m.end()                      # the start of the next line with code (or the end)
            k = _SPACES.match(text, j).end()
            ends = depth <= 0 and last_sig != "|" and text[k:k + 1] != "|"
            # Inside a cell body `name = ...` is an equation, not a new statement.
            pattern = _CELL_BODY_BREAK if (cur.cell and depth > 0) else _STATEMENT_START
            if ends:
                cur.end = i
            elif pattern.match(text, j):
                cur.end = j - 1
            else:
                continue
            spans.append(cur)
            cur, depth, last_sig = None, 0, ""
            continue
        if kind in ("cm", "sp", "lc"):
            continue
        if cur is None:
            if len(spans) >= MAX_STATEMENTS:
                return _Scan(spans, "statements", i)
            cur = _Span(i, cell=bool(CELL_START.match(text, i)))
        piece = m.group()
        if kind == "tx":
            tokens += len(_WORDS.findall(piece))
            last_sig = piece[-1]
        else:
            tokens += 1
            if kind == "op":
                depth += 1
                if depth > MAX_NESTING and cur.too_deep is None:
                    cur.too_deep = i
            elif kind == "cl":
                depth -= 1
            last_sig = piece[0] if kind == "st" else piece
        if tokens > MAX_TOKENS:
            cur.end = m.end()
            spans.append(cur)
            return _Scan(spans, "tokens", i)
    if cur is not None:
        cur.end = len(text.rstrip())
        spans.append(cur)
    return _Scan(spans)


def split_statements(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each statement; comments and blank lines belong to none."""
    return [(s.start, s.end) for s in _scan(text).spans]


# An unindented `input`, `output`, `train` or `name =` starts a new statement even
# when a bracket above was left open, so one missing ')' does not swallow the rest.
_STATEMENT_START = re.compile(r"(input|output|train)\b|cell\s+[A-Za-z_]|[A-Za-z_]\w*\s*=[^=]")
# Inside a cell body only the keywords do (equations look like bindings), but not the
# equation `output = ...` that gives a cell's output.
_CELL_BODY_BREAK = re.compile(r"(input|output(?!\s*=[^=])|train)\b|cell\s+[A-Za-z_]")
# A statement that is a cell definition: `cell NAME(`.
CELL_START = re.compile(r"cell\s+[A-Za-z_]\w*\s*\(")


# --------------------------------------------------------------------------------------
# lark tree -> ast


class StringError(ValueError):
    """A string literal that is not text: a malformed escape or a control character."""

    def __init__(self, offset: int, length: int, message: str, hint: str | None = None):
        super().__init__(message)
        self.offset, self.length, self.message, self.hint = offset, length, message, hint


_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|N\{[^{}]*\}|[0-7]{1,3}|.?)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b",
                   "f": "\f", "v": "\v", "0": "\0"}
_BACKSLASH_HINT = ("a backslash starts an escape such as \\n or \\t: write '/' in paths, or '\\\\' "
                   "for a backslash")


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _control_error(at: int, length: int, char: str, escaped: bool) -> StringError:
    what = ("a lone surrogate" if 0xD800 <= ord(char) < 0xE000 else "the control character") + f" U+{ord(char):04X}"
    return StringError(at, length, f"a string holds {what}",
                       _BACKSLASH_HINT if escaped else "a string holds printable text only")


def _decode_escape(m: re.Match) -> str:
    body = m.group(1)
    if body in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[body]
    kind = body[:1]
    if kind in ("x", "u", "U"):
        if len(body) == 1:
            need = {"x": 2, "u": 4, "U": 8}[kind]
            raise StringError(m.start(), 2, f"the escape \\{kind} needs {need} hex digits",
                              f"e.g. \\{kind}{'0' * (need - 2)}41 for 'A'; " + _BACKSLASH_HINT)
        code = int(body[1:], 16)
        if code > 0x10FFFF:
            raise StringError(m.start(), len(m.group()), f"the escape {m.group()} is not a character "
                              "(code points end at \\U0010ffff)")
        return chr(code)
    if kind == "N":
        import unicodedata

        if body[1:2] != "{":
            raise StringError(m.start(), 2, "the escape \\N needs a name in braces, e.g. \\N{DEGREE SIGN}",
                              _BACKSLASH_HINT)
        try:
            return unicodedata.lookup(body[2:-1])
        except KeyError:
            raise StringError(m.start(), len(m.group()), f"unknown character name {clip(body[2:-1])!r}",
                              "\\N{...} takes a Unicode name, e.g. \\N{DEGREE SIGN}") from None
    if kind and kind in "01234567":
        return chr(int(body, 8))
    return m.group()                                # an unknown escape keeps its backslash, as in Python


def unescape(raw: str) -> str:
    """The text of a string literal's body: Python's escapes (\\n, \\t, \\\\, \\", \\xHH, \\uHHHH,
    \\UHHHHHHHH, \\N{NAME}, octal); an unknown escape such as \\d keeps its backslash, as in
    Python. Raises StringError (with the offset in `raw`) for a malformed escape and for a
    control character: a string names a file, a layer or a choice, and none holds a tab, a
    newline or a NUL."""
    parts: list[str] = []
    last = 0

    def plain(start: int, end: int) -> None:
        bad = _CONTROL.search(raw, start, end)
        if bad:
            raise _control_error(bad.start(), 1, bad.group(), False)
        parts.append(raw[start:end])

    if "\\" in raw:
        for m in _ESCAPE.finditer(raw):
            plain(last, m.start())
            text = _decode_escape(m)
            bad = _CONTROL.search(text)
            if bad:
                raise _control_error(m.start(), len(m.group()), bad.group(), True)
            parts.append(text)
            last = m.end()
    plain(last, len(raw))
    return "".join(parts)


class _ToAst:
    """Lark's tree of one statement -> its ast node (without recursion: a deep tree is fine).

    The statement was parsed on its own, so Lark's line numbers count from its first
    line: `line0` (the statement's first line in the file, less one) is added to them.
    Literals that cannot be values (a number too large, a bad escape in a string) are
    reported into `sink` at their place."""

    def __init__(self, file: str, line0: int = 0, sink: DiagnosticSink | None = None):
        self.file = file
        self.line0 = line0
        self.sink = sink

    def transform(self, tree: Tree):
        """Children before parents, with an explicit stack: rule `name` -> self.name(meta, items)."""
        order, todo = [], [tree]
        while todo:
            t = todo.pop()
            order.append(t)
            if isinstance(t, Tree):
                todo.extend(t.children)
        values: list = []
        for t in reversed(order):
            if isinstance(t, Tree):
                n = len(t.children)
                items = values[len(values) - n:] if n else []
                if n:
                    del values[len(values) - n:]
                values.append(getattr(self, t.data)(t.meta, items))
            else:
                if t is not None and t.type == "NAME" and len(t) > MAX_NAME:
                    self._report(self._tok(t), f"the name {clip(str(t))} is {len(t):,} characters long",
                                 f"names are at most {MAX_NAME} characters")
                values.append(t)
        return values[0]

    def _pos(self, meta) -> Pos:
        if getattr(meta, "empty", True):
            return Pos(self.file, 0, 0)
        end = meta.end_column if meta.end_line == meta.line else None
        return Pos(self.file, meta.line + self.line0, meta.column, end)

    def _tok(self, tok: Token) -> Pos:
        return Pos(self.file, tok.line + self.line0, tok.column, tok.end_column)

    def _report(self, pos: Pos, message: str, hint: str | None = None) -> None:
        if self.sink is None:
            raise ValueError(f"{pos}: {message}")
        self.sink.error(pos, message, hint)

    def _int(self, tok: Token) -> int:
        text = str(tok)
        digits = text.lstrip("-")
        if len(digits) > 19 or abs(int(digits)) > MAX_INT:
            self._report(self._tok(tok), f"the number {clip(text)} is too large "
                         f"({len(digits):,} digits): whole numbers in a spec are at most {MAX_INT:,}")
            return 1
        return int(text)

    def _float(self, tok: Token) -> float:
        value = float(tok)
        if not math.isfinite(value):
            self._report(self._tok(tok), f"the number {clip(str(tok))} is too large for a float "
                         "(at most about 1.8e308)")
            return 1.0
        return value

    def start(self, meta, items):
        return items[0]

    def input_decl(self, meta, items):
        name, (dtype, dims, type_pos) = items
        return ast.InputDecl(str(name), dtype, [d for d, _ in dims], self._tok(name), type_pos,
                             [p for _, p in dims])

    def type_expr(self, meta, items):
        return (str(items[0]), list(items[1:]), self._pos(meta))

    def dim_int(self, meta, items):
        return self._int(items[0]), self._tok(items[0])

    def dim_var(self, meta, items):
        return None, self._pos(meta)

    def binding(self, meta, items):
        return ast.Binding(str(items[0]), items[1], self._tok(items[0]))

    def named_output(self, meta, items):
        return ast.Output(str(items[0]), items[1], self._pos(meta))

    def named_outputs(self, meta, items):
        """output h, c = enc.state: one name per part of a state."""
        return ast.Output(None, items[-1], self._pos(meta), names=[str(n) for n in items[:-1]],
                          name_pos=[self._tok(n) for n in items[:-1]])

    def output_stmt(self, meta, items):
        return ast.Output(None, items[0], self._pos(meta))

    def bare_output(self, meta, items):
        return ast.Output(None, items[0], self._pos(meta))

    def pipeline(self, meta, items):
        return ast.Pipeline(list(items), self._pos(meta))

    def call(self, meta, items):
        name, *args = items
        return ast.Call(str(name), [a for a in args if a is not None], self._tok(name))

    def ref(self, meta, items):
        return ast.Ref([str(t) for t in items], self._pos(meta))

    def kwarg(self, meta, items):
        return ast.Arg(str(items[0]), items[1], self._tok(items[0]))

    def posarg(self, meta, items):
        value = items[0]
        return ast.Arg(None, value, value.pos)

    def int(self, meta, items):
        return ast.Num(self._int(items[0]), self._tok(items[0]))

    def float(self, meta, items):
        return ast.Num(self._float(items[0]), self._tok(items[0]))

    def string(self, meta, items):
        tok = items[0]
        pos = self._tok(tok)
        try:
            value = unescape(str(tok)[1:-1])
        except StringError as e:
            self._report(Pos(self.file, pos.line, pos.column + 1 + e.offset, pos.column + 1 + e.offset + e.length),
                         e.message, e.hint)
            value = ""
        return ast.Str(value, pos)

    def true(self, meta, items):
        return ast.Bool(True, self._pos(meta))

    def false(self, meta, items):
        return ast.Bool(False, self._pos(meta))

    def list(self, meta, items):
        return ast.ListValue([v for v in items if v is not None], self._pos(meta))

    def train_block(self, meta, items):
        return ast.TrainBlock([s for s in items if s is not None], self._pos(meta))

    def setting(self, meta, items):
        return ast.Setting(str(items[0]), items[1], self._tok(items[0]))

    # --- custom cells ---------------------------------------------------------------
    def cell_def(self, meta, items):
        calls = [i for i in items if isinstance(i, ast.Call)]
        equations = [i for i in items if isinstance(i, ast.Equation)]
        return ast.CellDef(calls[0], calls[1:], equations, calls[0].pos)

    def equation(self, meta, items):
        return ast.Equation(str(items[0]), items[1], self._tok(items[0]))

    def _bin(op):
        def make(self, meta, items):
            return ast.EBinary(op, items[0], items[1], self._pos(meta))
        return make

    e_add, e_sub, e_mul, e_div, e_matmul = _bin("+"), _bin("-"), _bin("*"), _bin("/"), _bin("@")
    del _bin

    def e_neg(self, meta, items):
        return ast.EUnary("-", items[0], self._pos(meta))

    def e_var(self, meta, items):
        return ast.EVar(str(items[0]), self._tok(items[0]))

    def e_int(self, meta, items):
        return ast.ENum(float(self._int(items[0])), self._tok(items[0]))

    def e_float(self, meta, items):
        return ast.ENum(self._float(items[0]), self._tok(items[0]))

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


def _deepest(tree: Tree, limit: int):
    """None, or the part of the statement (a child of its root: an equation, a pipeline,
    a setting) that holds a subtree more than `limit` levels deep. No recursion."""
    stack = [(c, 2, c) for c in tree.children if isinstance(c, Tree)]
    while stack:
        t, d, part = stack.pop()
        if d > limit:
            return part
        stack.extend((c, d + 1, part) for c in t.children if isinstance(c, Tree))
    return None


def _first_token(t):
    """The first token under a tree (for a position), without recursion."""
    stack = [t]
    while stack:
        x = stack.pop()
        if isinstance(x, Token):
            return x
        if isinstance(x, Tree):
            stack.extend(reversed(x.children))
    return None


def read_spec(path, file: str | None = None) -> str:
    """The text of a spec file: UTF-8 (a byte-order mark is dropped), at most MAX_SPEC_BYTES.

    A file that is not UTF-8 is a SpecError at the first bad byte (its line, column and
    byte offset); a file that cannot be read raises OSError."""
    file = str(path) if file is None else file
    with open(path, "rb") as f:
        data = f.read(MAX_SPEC_BYTES + 1)
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError([Diagnostic(Pos(file, 1, 1), f"the spec is larger than {MAX_SPEC_BYTES:,} bytes",
                                    "a spec is a short text: is this the right file?")])
    return decode_spec(data, file)


def decode_spec(data: bytes, file: str = "<spec>") -> str:
    """UTF-8 bytes -> text (a leading byte-order mark dropped), or a SpecError at the first
    byte that is not UTF-8."""
    skip = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as e:
        bad = e.start + skip
        line_start = max(data.rfind(b"\n", 0, bad) + 1, skip)
        line = data.count(b"\n", 0, bad) + 1
        line_end = data.find(b"\n", bad)
        before = data[line_start:bad].decode("utf-8")
        shown = data[line_start:line_end if line_end >= 0 else len(data)].decode("utf-8", errors="replace")
        raise SpecError([Diagnostic(
            Pos(file, line, len(before) + 1),
            f"the spec is not UTF-8 text: byte 0x{data[bad]:02x} at byte offset {bad:,} "
            f"cannot be decoded ({e.reason})",
            "the file is UTF-16: save it as UTF-8" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else
            "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 old.rnn > new.rnn`)", shown)]) from None


def parse(text: str, file: str = "<spec>") -> ast.Spec:
    """Parse a whole spec; raises SpecError listing every syntax error.

    Linear in the text's length: one scan splits it into statements, and each statement
    is parsed on its own (its positions shifted to its place in the file)."""
    if isinstance(text, (bytes, bytearray)):
        text = decode_spec(bytes(text), file)
    if not isinstance(text, str):
        raise TypeError(f"a spec is text (str), not {type(text).__name__}")
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError([Diagnostic(Pos(file, 1, 1), f"the spec is longer than {MAX_SPEC_BYTES:,} characters",
                                    "a spec is a short text")])
    sink = DiagnosticSink(text, file)
    lines = sink.lines
    parser = lark_parser()
    statements: list[ast.Statement] = []
    scan = _scan(text)

    def at(offset: int, end: int | None = None) -> Pos:
        line = lines.line_of(offset)
        column = offset - lines.starts[line - 1] + 1
        return Pos(file, line, column, None if end is None else column + (end - offset))

    if scan.over == "tokens":
        scan.spans.pop()                 # the statement the scan stopped in is cut short
    for span in scan.spans:
        start, end = span.start, span.end
        if span.too_deep is not None:
            sink.error(at(span.too_deep, span.too_deep + 1),
                       f"brackets nest more than {MAX_NESTING} deep here",
                       "a spec nests a few levels at most: check for a runaway bracket")
            continue
        line0 = lines.line_of(start)
        col = start - lines.starts[line0 - 1]
        chunk = " " * col + text[start:end]
        is_cell = span.cell
        try:
            tree = parser.parse(chunk, start="cell_def" if is_cell else "start")
        except UnexpectedCharacters as e:
            ch = chunk[e.pos_in_stream] if e.pos_in_stream < len(chunk) else "?"
            hint = "strings use double quotes" if ch == "`" else None
            if ch == "-" or ch == ">":
                hint = "stages of a pipeline are joined with '|'"
            sink.error(Pos(file, e.line + line0 - 1, e.column), f"unexpected character {ch!r}", hint)
            continue
        except UnexpectedToken as e:
            tok = e.token
            if tok.type in _CELL_OPERATORS and not is_cell:
                # an arithmetic operator outside a cell is a stray character, as before cells existed
                hint = "stages of a pipeline are joined with '|'" if tok.value == "-" else None
                sink.error(Pos(file, tok.line + line0 - 1, tok.column, tok.end_column),
                           f"unexpected character {tok.value!r}", hint)
                continue
            if tok.type == "$END":
                pos = at(end)
                pos = Pos(file, pos.line, pos.column + 1)
                found = "the statement ends"
            else:
                pos = Pos(file, tok.line + line0 - 1, tok.column, tok.end_column)
                found = f"unexpected {clip(tok.value)!r}"
            expected = set(e.expected)
            sink.error(pos, f"{found}; expected {_describe_expected(expected)}",
                       _syntax_hint(tok.type, expected, text[start:end]))
            continue
        except UnexpectedEOF:  # pragma: no cover - lalr reports UnexpectedToken($END)
            sink.error(Pos(file, line0, col + 1), "unexpected end of input")
            continue
        deep = _deepest(tree, MAX_DEPTH)
        if deep is not None:
            tok = _first_token(deep)
            pos = Pos(file, tok.line + line0 - 1, tok.column) if tok is not None else at(start)
            sink.error(pos, f"this {'equation' if is_cell else 'statement'} nests more than {MAX_DEPTH} levels deep",
                       "split a long expression into several equations (a = ..., b = a + ...)" if is_cell
                       else "a spec nests a few levels at most")
            continue
        statements.append(_ToAst(file, line0 - 1, sink).transform(tree))
    if scan.over == "statements":
        sink.error(at(scan.over_at), f"the spec has more than {MAX_STATEMENTS:,} statements",
                   f"rnndsl reads specs of up to {MAX_STATEMENTS:,} statements and {MAX_TOKENS:,} tokens")
    elif scan.over == "tokens":
        sink.error(at(scan.over_at), f"the spec has more than {MAX_TOKENS:,} tokens (names, numbers, strings, "
                   "symbols) by here", f"rnndsl reads specs of up to {MAX_TOKENS:,} tokens and "
                   f"{MAX_STATEMENTS:,} statements")
    sink.raise_if_any()
    return ast.Spec(statements, file, text)
