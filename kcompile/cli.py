"""The ``kcompile`` command.

    kcompile ir MODEL.py --stage forward|predict|eval|train [-o FILE]
    kcompile compile MODEL.py|STAGE.kir      compile to native code, print the times

MODEL.py defines ``build_model()`` returning a compiled model; its training
code stays under ``if __name__ == "__main__":`` so importing it trains nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from ir import print_graph
from kcompile.runtime import prepare

STAGES = ("forward", "predict", "eval", "train")


def load_model_file(path: str):
    """Import ``path`` and return ``build_model()``; errors name the file."""
    if not os.path.isfile(path):
        raise SystemExit(f"kcompile: {path}: no such file")
    spec = importlib.util.spec_from_file_location("kcompile_user_model", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise SystemExit(f"kcompile: {path}: failed to import: {type(e).__name__}: {e}") from e
    build = getattr(module, "build_model", None)
    if not callable(build):
        raise SystemExit(f"kcompile: {path}: defines no build_model() function")
    model = build()
    if not getattr(model, "built", False):
        raise SystemExit(
            f"kcompile: {path}: build_model() must return a built model (start it with keras.Input)"
        )
    return model


def stage_graph(model, stage: str):
    if stage == "forward":
        return model.step_graph("predict")
    graph = model.step_graph("eval" if stage == "eval" else stage)
    return prepare(graph)


def cmd_ir(args: argparse.Namespace) -> int:
    model = load_model_file(args.model)
    text = print_graph(stage_graph(model, args.stage))
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from ir import parse_graph
    from kcompile import __version__
    from kcompile.runtime.native import NativeExecutable

    if args.source.endswith(".kir"):
        try:
            with open(args.source) as f:
                graphs = [parse_graph(f.read(), args.source)]
        except OSError as e:
            raise SystemExit(f"kcompile: {args.source}: {e.strerror}") from None
    else:
        model = load_model_file(args.source)
        graphs = [stage_graph(model, stage) for stage in ("train", "eval", "predict")]
    for graph in graphs:
        exe = NativeExecutable(prepare(graph), version=__version__)
        total = sum(exe.compile_times.stages.values())
        source = "from the cache" if exe.cache_hit else "compiled"
        print(f"{graph.name}: {len(graph.nodes)} nodes, {source} in {total * 1e3:.1f} ms")
        for stage, seconds in exe.compile_times.stages.items():
            print(f"  {stage:<22} {seconds * 1e3:8.1f} ms")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kcompile", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ir = sub.add_parser("ir", help="print the IR of one stage of a model")
    ir.add_argument("model", help="a Python file defining build_model()")
    ir.add_argument("--stage", choices=STAGES, default="train")
    ir.add_argument("-o", "--output", help="write to this file instead of stdout")
    ir.set_defaults(run=cmd_ir)
    comp = sub.add_parser("compile", help="compile a model or a .kir dump to native code")
    comp.add_argument("source", help="a model file (build_model()) or a graph dump (.kir)")
    comp.set_defaults(run=cmd_compile)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
