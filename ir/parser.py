"""Reads the text form of ``ir.printer`` back into a ``Graph``.

Errors name the line and column and say what was expected.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import numpy as np

from kcompile.ir.graph import Graph, Value
from kcompile.ir.memory import Allocation, MemoryPlan, Size
from kcompile.ir.printer import PACKED, print_graph
from kcompile.ir.types import BATCH, DType, ShapeError, TensorType
from kcompile.ir.verify import VerifyError, first_difference, verify, verify_memory


class IRParseError(ValueError):
    def __init__(self, message: str, line: int, column: int, source: str = "<text>") -> None:
        super().__init__(f"{source}:{line}:{column}: {message}")
        self.line = line
        self.column = column


# One token and the blanks before it, matched line by line: a ``finditer`` over a line
# visits each token once (a ``match`` per token and per blank from Python was most of a
# parse's time). ``bad`` takes any other character, which is an error.
_TOKEN = re.compile(
    r"""
    [ \t\r]*
    (?:
      (?P<comment>\#.*)
    | (?P<value>%[A-Za-z0-9_./]+|%"(?:[^"\\\n]|\\.)*")
    | (?P<number>-?(?:inf|nan|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)(?![A-Za-z0-9_]))
    | (?P<ident>[A-Za-z_][A-Za-z0-9_./]*)
    | (?P<string>"(?:[^"\\\n]|\\.)*")
    | (?P<punct>[(){}\[\],:=*])
    | (?P<bad>[^ \t\r])
    )
    """,
    re.VERBOSE,
)


def unquoted(text: str) -> str:
    """The text of an IR string token (``"..."``, backslash escapes undone)."""
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def value_name(text: str) -> str:
    """The name a value token writes: ``%name`` or ``%"name"``."""
    return unquoted(text[1:]) if text.startswith('%"') else text[1:]


@dataclass(slots=True)
class Token:
    kind: str
    text: str
    line: int
    col: int


def tokenize(text: str, source: str) -> list[Token]:
    tokens = []
    lines = text.split("\n")
    for line, content in enumerate(lines, 1):
        for m in _TOKEN.finditer(content):
            kind = m.lastgroup
            col = m.start(kind) + 1
            if kind == "bad":
                raise IRParseError(f"unexpected character {m.group(kind)!r}", line, col, source)
            tokens.append(Token(kind, m.group(kind), line, col))
    tokens.append(Token("eof", "", len(lines), len(lines[-1]) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.tokens = tokenize(text, source)
        self.pos = 0

    # --- token helpers ------------------------------------------------------

    def peek(self, skip_comments: bool = True) -> Token:
        while skip_comments and self.tokens[self.pos].kind == "comment":
            self.pos += 1
        return self.tokens[self.pos]

    def error(self, message: str, tok: Token | None = None):
        tok = tok or self.peek()
        found = tok.text or "end of text"
        return IRParseError(f"{message}, found {found!r}", tok.line, tok.col, self.source)

    def take(self, kind: str, text: str | None = None) -> Token:
        tok = self.peek()
        if tok.kind != kind or (text is not None and tok.text != text):
            raise self.error(f"expected {text or kind}")
        self.pos += 1
        return tok

    def take_int(self, what: str) -> int:
        """A decimal integer (a number token with digits only, optionally negative)."""
        tok = self.peek()
        if tok.kind != "number" or not re.fullmatch(r"-?\d+", tok.text):
            raise self.error(f"expected an integer {what}")
        self.pos += 1
        return int(tok.text)

    def accept(self, text: str) -> bool:
        tok = self.peek()
        if tok.kind == "punct" and tok.text == text:
            self.pos += 1
            return True
        return False

    # --- grammar ------------------------------------------------------------

    def parse_type(self) -> TensorType:
        tok = self.take("ident")
        try:
            dtype = DType.parse(tok.text)
        except ValueError as e:
            raise self.error(str(e), tok) from None
        self.take("punct", "[")
        dims: list[int | str] = []
        while not self.accept("]"):
            if dims:
                self.take("punct", ",")
            d = self.peek()
            if d.kind == "number" and d.text.isdigit():
                dims.append(int(d.text))
            elif d.kind == "ident" and d.text == BATCH:
                dims.append(BATCH)
            else:
                raise self.error(f"expected a dimension (an integer or {BATCH})")
            self.pos += 1
        return TensorType(dtype, tuple(dims))

    def parse_attr_value(self):
        tok = self.peek()
        if tok.kind == "ident" and tok.text == "graph":
            return self.parse_graph(nested=True)
        if tok.kind == "punct" and tok.text == "[":
            self.pos += 1
            items = []
            while not self.accept("]"):
                if items:
                    self.take("punct", ",")
                items.append(self.parse_attr_value())
            return tuple(items)
        self.pos += 1
        if tok.kind == "number":
            return float(tok.text) if re.search(r"[.eEan]", tok.text) else int(tok.text)
        if tok.kind == "string":
            return unquoted(tok.text)
        if tok.kind == "ident" and tok.text in PACKED and self.peek().kind == "string":
            data = bytes.fromhex(unquoted(self.take("string").text))
            return tuple(np.frombuffer(data, dtype=PACKED[tok.text]).tolist())
        if tok.kind == "ident":
            return {"true": True, "false": False, "none": None}.get(tok.text, tok.text)
        raise self.error("expected an attribute value", tok)

    def parse_graph(self, nested: bool = False) -> Graph:
        self.take("ident", "graph")
        graph = Graph(self.take("ident").text)
        env: dict[str, Value] = {}
        self.take("punct", "(")
        while not self.accept(")"):
            tok = self.take("value")
            self.take("punct", ":")
            type_ = self.parse_type()
            role = self.take("ident").text
            try:
                env[tok.text] = graph.add_input(value_name(tok.text), type_, role)
            except ValueError as e:
                raise self.error(str(e), tok) from None
            if not self.accept(","):
                self.take("punct", ")")
                break
        self.take("punct", "{")
        while self.peek().text != "return":
            self.parse_node(graph, env)
        self.take("ident", "return")
        outputs = []
        while not (self.peek().kind == "punct" and self.peek().text == "}"):
            if outputs:
                self.take("punct", ",")
            tok = self.peek()
            name = unquoted(self.take("string").text) if tok.kind == "string" else None
            name = name if name is not None else self.take("ident").text
            self.take("punct", "=")
            outputs.append((name, self.lookup(env, self.take("value"))))
        end = self.take("punct", "}")
        try:
            graph.set_outputs(outputs)
        except ValueError as e:
            raise self.error(str(e), end) from None
        if self.peek().kind == "ident" and self.peek().text == "memory":
            memory_tok = self.peek()
            graph.memory = self.parse_memory(env)
            self.check_memory(graph, memory_tok)
        if not nested:
            self.take("eof")
        return graph

    def parse_memory(self, env: dict[str, Value]):
        self.take("ident", "memory")
        self.take("punct", "(")
        header = {}
        while not self.accept(")"):
            if header:
                self.take("punct", ",")
            key = self.take("ident").text
            self.take("punct", "=")
            header[key] = self.take_int(key)
        for key in ("max_batch", "arena"):
            if key not in header:
                raise self.error(f"memory needs {key}=")
        plan = MemoryPlan(header["max_batch"], arena_bytes=header["arena"])
        plan.per_row_bytes = header.get("per_row")
        self.take("punct", "{")
        while not self.accept("}"):
            value_tok = self.take("value")
            value = self.lookup(env, value_tok)
            fields = {}
            for _ in range(3):
                key = self.take("ident").text
                self.take("punct", "=")
                if key == "alias":
                    fields[key] = self.lookup(env, self.take("value"))
                elif key == "live":
                    start = self.take_int("live range start")
                    self.take("punct", ":")
                    fields[key] = (start, self.take_int("live range end"))
                elif key == "bytes":
                    coef = self.take_int("byte count")
                    power = 0
                    if self.accept("*"):
                        self.take("ident", BATCH)
                        power = 1
                    fields[key] = Size(coef, power)
                elif key == "offset":
                    fields[key] = self.take_int("offset")
                else:
                    raise self.error(f"unknown memory field {key!r}")
            if "live" not in fields or "bytes" not in fields:
                raise self.error(f"{value_tok.text} needs live= and bytes=", value_tok)
            start, end = fields["live"]
            plan.allocations[value] = Allocation(
                start, end, fields["bytes"], fields.get("offset", -1), fields.get("alias")
            )
        return plan

    def check_memory(self, graph: Graph, tok: Token) -> None:
        """A plan that could compute wrong values (overlapping live buffers, impossible
        live ranges, buffers outside the arena) is refused where it is read."""
        try:
            verify_memory(graph)
        except (VerifyError, ValueError) as e:
            raise self.error(f"invalid memory plan: {e}", tok) from None

    def lookup(self, env: dict[str, Value], tok: Token) -> Value:
        if tok.text not in env:
            raise self.error(f"undefined value {tok.text}", tok)
        return env[tok.text]

    def parse_node(self, graph: Graph, env: dict[str, Value]) -> None:
        first = self.peek()
        results = [self.take("value")]
        while self.accept(","):
            results.append(self.take("value"))
        self.take("punct", "=")
        op_tok = self.take("ident")
        self.take("punct", "(")
        args = []
        while not self.accept(")"):
            if args:
                self.take("punct", ",")
            args.append(self.lookup(env, self.take("value")))
        attrs = {}
        if self.accept("{"):
            while not self.accept("}"):
                if attrs:
                    self.take("punct", ",")
                key = self.take("ident").text
                self.take("punct", "=")
                attrs[key] = self.parse_attr_value()
        self.take("punct", ":")
        if self.accept("("):
            types = [self.parse_type()]
            while self.accept(","):
                types.append(self.parse_type())
            self.take("punct", ")")
        else:
            types = [self.parse_type()]
        end_line = self.tokens[self.pos - 1].line
        layer = ""
        tok = self.tokens[self.pos]
        if tok.kind == "comment" and tok.line == end_line:
            layer = tok.text[1:].strip()
            self.pos += 1
        try:
            outs = graph.emit(op_tok.text, args, attrs, layer=layer)
        except (ShapeError, KeyError, ValueError) as e:
            raise self.error(str(e).strip("'\""), op_tok) from None
        except Exception as e:  # a shape rule given attributes of the wrong kind
            raise self.error(
                f"invalid attributes for {op_tok.text} ({type(e).__name__}: {e})", op_tok
            ) from None
        if len(outs) != len(results):
            raise self.error(
                f"op {op_tok.text} makes {len(outs)} results, {len(results)} are named", first
            )
        for tok, v, t in zip(results, outs, types):
            if v.type != t:
                raise self.error(f"declared type {t} but op {op_tok.text} makes {v.type}", tok)
            if tok.text in env:
                raise self.error(f"value {tok.text} is defined twice", tok)
            env[tok.text] = v


def parse_graph(text: str, source: str = "<text>") -> Graph:
    """Parse one graph; ``source`` (a file name) is used in error messages. Malformed text
    raises ``IRParseError`` with the line and column, and nothing else."""
    parser = _Parser(text, source)
    try:
        return parser.parse_graph()
    except RecursionError:
        raise parser.error("nesting too deep") from None


# Texts parsed by check_round_trip, newest last: half the stages of a pipeline leave the
# graph's text as it was (and tests compile one model many times), and parsing was 60% of
# a pipeline's time under KCOMPILE_VERIFY. Each graph is still compared with the parse.
_PARSED: dict[str, Graph] = {}
_PARSED_KEPT = 32
_parsed_lock = threading.Lock()


def check_round_trip(graph: Graph) -> None:
    """Verify ``graph`` and check that its text parses back to an equal graph."""
    verify(graph)
    text = print_graph(graph)
    with _parsed_lock:
        again = _PARSED.pop(text, None)
    if again is None:
        again = parse_graph(text, f"<{graph.name}>")
    with _parsed_lock:
        _PARSED[text] = again
        while len(_PARSED) > _PARSED_KEPT:
            del _PARSED[next(iter(_PARSED))]
    diff = first_difference(graph, again)
    if diff is not None:
        raise VerifyError(f"graph {graph.name} does not survive print/parse: {diff}")
