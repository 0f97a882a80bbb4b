"""The manual (README.md and docs/*.md) checked against the repository: every relative link
and anchor resolves, every `kcompile <subcommand>` and `KCOMPILE_*` variable it names
exists in the code, and the README stays a two-minute read."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
LIBRARY = ("kcompile", "ir", "passes", "codegen")
# Scripts beside the library that read variables of their own (the examples' seed, the
# golden-file switch, the benchmark driver's data file); a page may name those too.
SCRIPTS = ("examples", "tests", "benchmarks")
VARIABLE = re.compile(r"KCOMPILE_[A-Z0-9_]+")
FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def split_fences(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The prose of a page (fenced blocks blanked, so headings and links inside code are
    not taken for real ones) and its fenced blocks as (language, body)."""
    prose: list[str] = []
    blocks: list[tuple[str, str]] = []
    fence: tuple[str, str] | None = None  # (marker, language) of the open block
    body: list[str] = []
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence, body = (match.group(1), match.group(2).lower()), []
            prose.append("")
        elif fence is not None and line.strip().startswith(fence[0]):
            blocks.append((fence[1], "\n".join(body)))
            fence = None
            prose.append("")
        elif fence is not None:
            body.append(line)
            prose.append("")
        else:
            prose.append(line)
    assert fence is None, "a fenced code block is never closed"
    return "\n".join(prose), blocks


def code_spans(prose: str) -> list[str]:
    # A span may wrap onto the next line of its paragraph; markdown reads it as a space.
    return [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]


def without_code_spans(prose: str) -> str:
    return re.sub(r"`[^`]+`", "", prose)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, backticks and punctuation dropped,
    lower case, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    prose, _ = split_fences(page.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for line in prose.splitlines():
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        # GitHub numbers repeated headings: name, name-1, name-2, ...
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def relative_links(page: Path) -> Iterator[str]:
    prose, _ = split_fences(page.read_text(encoding="utf-8"))
    for target in LINK.findall(without_code_spans(prose)):
        if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            yield target


def broken_link(page: Path, target: str) -> str | None:
    """Why ``target``, linked from ``page``, does not resolve; None when it does."""
    path_part, _, anchor = target.partition("#")
    resolved = (page.parent / path_part).resolve() if path_part else page
    if not resolved.exists():
        return f"{page.name}: {target}: no such file"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"{page.name}: {target}: no heading with anchor #{anchor} in {resolved.name}"
    return None


def command_lines(page: Path) -> Iterator[str]:
    """What a page shows as commands: its inline code spans and the lines of its fenced
    blocks, except Python blocks (where `import kcompile` is no command)."""
    prose, blocks = split_fences(page.read_text(encoding="utf-8"))
    yield from code_spans(prose)
    for language, body in blocks:
        if language not in ("python", "py"):
            yield from body.splitlines()


def named_subcommands(line: str) -> Iterator[str]:
    """The word after `kcompile` where it starts a shell command: at the start of the line,
    after `&&`, `;` or `|`, or as the program `mpiexec` starts. Prose inside code spans
    (an error message's "... by kcompile yet") is not a command."""
    for command in re.split(r"&&|;|\|", line):
        words = command.split()
        if words[:1] == ["$"]:
            words = words[1:]
        if words[:1] == ["mpiexec"] and "kcompile" in words:
            words = words[words.index("kcompile") :]
        if len(words) > 1 and words[0] == "kcompile" and re.fullmatch(r"[a-z][\w-]*", words[1]):
            yield words[1]


def cli_module_name() -> str:
    """The module of the `kcompile` command: kcompile.tools.cli, or kcompile.cli before
    the tools moved."""
    for name in ("kcompile.tools.cli", "kcompile.cli"):
        try:
            if importlib.util.find_spec(name) is not None:
                return name
        except ModuleNotFoundError:  # kcompile.tools itself absent
            continue
    raise AssertionError("no kcompile.tools.cli or kcompile.cli module")


def subcommands_from(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def parser_builders(source: str) -> list[str]:
    """Functions of the CLI's source that may build the parser: named for it and taking no
    required argument. Read from the source so that the module is imported only to call
    one (importing the command imports the whole compiler)."""
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and "parser" in node.name.lower():
            arguments = node.args
            required = len(arguments.posonlyargs) + len(arguments.args) - len(arguments.defaults)
            if required == 0:
                names.append(node.name)
    return names


@cache
def real_subcommands() -> frozenset[str]:
    """The subcommands the `kcompile` parser accepts: from a parser-building function of
    the CLI module when it has one, else from its `--help`."""
    name = cli_module_name()
    spec = importlib.util.find_spec(name)
    source = Path(spec.origin).read_text(encoding="utf-8")
    for builder in parser_builders(source):
        parser = getattr(importlib.import_module(name), builder)()
        if isinstance(parser, argparse.ArgumentParser):
            return frozenset(subcommands_from(parser))
    # `main` builds and runs the parser in one function; its usage line lists the choices.
    help_text = subprocess.run(
        [sys.executable, "-m", name, "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=60,
    ).stdout
    match = re.search(r"\{([a-z_,-]+)\}", help_text)
    assert match, f"no subcommand list in `kcompile --help`:\n{help_text}"
    return frozenset(match.group(1).split(","))


def docstring_ids(tree: ast.AST) -> set[int]:
    """The string constants that are docstrings: prose, not something the code reads."""
    ids = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
        ):
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def python_files(folders: tuple[str, ...]) -> Iterator[Path]:
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path != Path(__file__).resolve():  # this file names variables to test them
                yield path


@cache
def library_variables() -> frozenset[str]:
    """Every KCOMPILE_* in a string literal of the library's code (docstrings left out)."""
    found = set()
    for path in python_files(LIBRARY):
        text = path.read_text(encoding="utf-8")
        if "KCOMPILE_" not in text:  # most files: parsing them all would take seconds
            continue
        tree = ast.parse(text)
        skip = docstring_ids(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in skip
            ):
                found.update(VARIABLE.findall(node.value))
    return frozenset(found)


@cache
def script_variables() -> frozenset[str]:
    """KCOMPILE_* names the examples, tests and benchmarks read from the environment
    (os.environ.get / os.getenv / os.environ[...]) with a literal name."""
    read = re.compile(
        r"""(?:environ\.get|getenv|environ\.setdefault)\(\s*["'](KCOMPILE_[A-Z0-9_]+)"""
        r"""|environ\[\s*["'](KCOMPILE_[A-Z0-9_]+)"""
    )
    found = set()
    for path in python_files(SCRIPTS):
        for a, b in read.findall(path.read_text(encoding="utf-8")):
            found.add(a or b)
    return frozenset(found)


def test_relative_links_and_anchors_resolve():
    checked = [(page, target) for page in pages() for target in relative_links(page)]
    # The README links every page; far fewer links means the link parser broke.
    assert len(checked) >= 20
    broken = [why for page, target in checked if (why := broken_link(page, target))]
    assert broken == []


def test_every_docs_page_is_linked_from_both_indexes():
    for index in (README, DOCS / "README.md"):
        linked = {(index.parent / t.partition("#")[0]).resolve() for t in relative_links(index)}
        missing = [p.name for p in DOCS.glob("*.md") if p != index and p.resolve() not in linked]
        assert missing == [], f"{index.relative_to(ROOT)} does not link {missing}"


def test_named_kcompile_subcommands_exist():
    named = {
        (page.name, word)
        for page in pages()
        for line in command_lines(page)
        for word in named_subcommands(line)
    }
    # The manual shows at least build, run, info, ir, fuzz: an empty set means the
    # extraction found nothing to check.
    assert len({word for _, word in named}) >= 5
    real = real_subcommands()
    assert len(real) >= 5
    unknown = sorted(f"{page}: kcompile {word}" for page, word in named if word not in real)
    assert unknown == []


def test_named_variables_exist_in_the_code():
    named = {
        (page.name, variable)
        for page in pages()
        for variable in VARIABLE.findall(page.read_text(encoding="utf-8"))
    }
    assert named, "the manual names no KCOMPILE_* variable at all"
    known = library_variables() | script_variables()
    unknown = sorted(f"{page}: {variable}" for page, variable in named if variable not in known)
    assert unknown == []


def test_every_variable_the_library_uses_is_in_the_reference():
    reference = (DOCS / "reference.md").read_text(encoding="utf-8")
    documented = set(VARIABLE.findall(reference))
    missing = sorted(library_variables() - documented)
    assert missing == []


def test_readme_is_short_and_says_what_kcompile_is():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < 200
    prose, _ = split_fences("\n".join(lines))
    paragraph: list[str] = []
    for line in prose.splitlines():
        if line.strip() and not HEADING.match(line):
            paragraph.append(line)
        elif paragraph:
            break
    first = " ".join(paragraph)
    assert "Keras" in first and "LLVM" in first, first
