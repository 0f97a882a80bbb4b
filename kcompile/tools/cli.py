"""The ``kcompile`` command.

    kcompile ir MODEL.py [--step train|eval|predict] [--stage NAME] [--dot] [-o FILE]
    kcompile ir MODEL.py --all DIR          every step's dump, as KCOMPILE_DUMP=DIR writes it
    kcompile compile MODEL.py|STAGE.kir     compile to native code, print the times
    kcompile memory MODEL.py [--budget 64MiB]
    kcompile check MODEL.py [--step train]
    kcompile profile MODEL.py [--step train] [--batch 32] [--calls 100]
    kcompile report MODEL.py -o report.html [--step train] [--batch 32] [--calls 20]
    kcompile build MODEL.py -o model.kc [--cpu host|x86-64-v3]   an artifact
    kcompile info model.kc                  print an artifact's manifest
    kcompile run model.kc --data DIR --epochs N [--checkpoint PATH]
    kcompile fuzz [--minutes M | --count C] [--seed S] [--jobs J] [--kind model|graph|parser]

MODEL.py defines ``build_model()`` returning a compiled model; its training
code stays under ``if __name__ == "__main__":`` so importing it trains nothing.
Stage names: ``traced``, ``autodiff`` (train), then each pass of the pipeline;
``--stage forward|predict|eval|train`` are shorthands for a whole step.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from kcompile.ir import parse_graph, print_graph
from kcompile.runtime import prepare
from kcompile.tools import inspect

STAGES = ("forward", "predict", "eval", "train")
STEPS = inspect.STEPS


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


def stage_graph(model, stage: str, step: str = "train", input_shapes: tuple = ()):
    """A shorthand (forward/predict/eval/train: a whole step) or a pipeline stage of ``step``."""
    if stage == "forward":
        return inspect.stage_graph(model, "predict", "traced", input_shapes)
    if stage in STEPS:
        return parse_graph(inspect.pipeline_stages(model, stage, None, input_shapes)[-1][1])
    return inspect.stage_graph(model, step, stage, input_shapes)


def _input_shapes(texts: list[str] | None) -> tuple:
    """``--input-shape 20 --input-shape 5,3``: each Input's shape without the batch."""
    try:
        return tuple(tuple(int(d) for d in t.split(",")) for t in texts or [])
    except ValueError:
        raise SystemExit(
            f"kcompile: --input-shape takes sizes separated by commas (20 or 5,3), got {texts}"
        ) from None


def _write(text: str, output: str | None) -> None:
    if output:
        with open(output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def cmd_ir(args: argparse.Namespace) -> int:
    model = load_model_file(args.model)
    shapes = _input_shapes(args.input_shape)
    try:
        if args.all:
            paths = inspect.dump_all(model, args.all, shapes)
            folders = ", ".join(dict.fromkeys(os.path.basename(os.path.dirname(p)) for p in paths))
            print(
                f"wrote every stage (.kir), the LLVM IR (.ll, .opt.ll) and the assembly (.s) "
                f"of {folders} to {os.path.join(args.all, '')}"
            )
            return 0
        graph = stage_graph(model, args.stage, args.step, shapes)
    except ValueError as e:
        raise SystemExit(f"kcompile: {e}") from None
    _write(inspect.to_dot(graph) if args.dot else print_graph(graph), args.output)
    return 0


def _parse_bytes(text: str) -> int:
    units = {
        "": 1,
        "B": 1,
        "KB": 1000,
        "KIB": 1024,
        "MB": 10**6,
        "MIB": 2**20,
        "GB": 10**9,
        "GIB": 2**30,
    }
    text = text.strip().upper()
    number = text.rstrip("KMGIB")
    unit = text[len(number) :]
    if unit not in units:
        raise SystemExit(f"kcompile: cannot read the size {text!r} (say 512MiB or 2GB)")
    return int(float(number) * units[unit])


def cmd_memory(args: argparse.Namespace) -> int:
    from kcompile.passes.memory import largest_batch_within, memory_report

    model = load_model_file(args.model)
    graph = stage_graph(model, args.step)
    print(f"{graph.name}:")
    print(memory_report(graph).text())
    if args.budget:
        budget = _parse_bytes(args.budget)
        best = largest_batch_within(graph, budget)
        print(f"largest batch within {args.budget} (arena + batch + weights + state): {best}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    model = load_model_file(args.model)
    steps = STEPS if args.step == "all" else (args.step,)
    failed = False
    for step in steps:
        result = inspect.check(model, step)
        print(result.text())
        failed |= not result.ok
    return 1 if failed else 0


def cmd_compile(args: argparse.Namespace) -> int:
    from kcompile.ir import IRParseError, parse_graph
    from kcompile.runtime.native import NativeExecutable
    from kcompile.version import __version__

    if args.source.endswith(".kir"):
        try:
            with open(args.source) as f:
                graphs = [parse_graph(f.read(), args.source)]
        except OSError as e:
            raise SystemExit(f"kcompile: {args.source}: {e.strerror}") from None
        except IRParseError as e:  # already file:line:col: message
            print(e, file=sys.stderr)
            return 2
        # A dump resumes where it was taken: passes already applied are no-ops on it,
        # and a planned graph keeps its plan.
        graphs = [g if g.memory is not None else prepare(g) for g in graphs]
    else:
        model = load_model_file(args.source)
        graphs = [stage_graph(model, step) for step in STEPS]
    for graph in graphs:
        exe = NativeExecutable(graph, version=__version__)
        total = sum(exe.compile_times.stages.values())
        source = "from the cache" if exe.cache_hit else "compiled"
        print(f"{graph.name}: {len(graph.nodes)} nodes, {source} in {total * 1e3:.1f} ms")
        for stage, seconds in exe.compile_times.stages.items():
            print(f"  {stage:<22} {seconds * 1e3:8.1f} ms")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    model = load_model_file(args.model)
    result = inspect.profile_step(model, args.step, args.batch, args.calls)
    print(result.text(args.top))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from kcompile.report import write_report
    from kcompile.report.graph_svg import GraphvizError

    model = load_model_file(args.model)
    try:
        path = write_report(
            model, args.output, args.step, args.batch, args.calls, _input_shapes(args.input_shape)
        )
    except (ValueError, GraphvizError) as e:  # Graphviz's: dot missing or failing
        raise SystemExit(f"kcompile: {e}") from None
    print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB): open it in a browser")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    model = load_model_file(args.model)
    try:
        manifest = model.export(args.output, seed=args.seed, cpu=args.cpu)
    except (ValueError, RuntimeError) as e:
        raise SystemExit(f"kcompile: {e}") from None
    size = os.path.getsize(args.output)
    print(
        f"wrote {args.output} ({size / 1024:.0f} KiB, {manifest['library']['kind']} code, "
        f"built in {manifest['build_seconds']:.1f} s)"
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import json

    from kcompile.artifact.container import ArtifactError, read_artifact
    from kcompile.artifact.info import describe

    try:
        manifest, _ = read_artifact(args.artifact)
    except (ArtifactError, OSError) as e:
        raise SystemExit(f"kcompile: {e}") from None
    print(json.dumps(manifest, indent=1, sort_keys=True) if args.json else describe(manifest))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Train a loaded artifact from its last finished epoch up to ``--epochs``, writing
    a checkpoint after every epoch; a run stopped (Ctrl-C, a crash) resumes from it.
    Started by mpiexec with several processes, it trains data-parallel (``--batch-size``
    is the global batch) and rank 0 writes the checkpoints."""
    import kcompile
    from kcompile import distribution
    from kcompile.artifact import ArtifactError
    from kcompile.artifact.data import read_folder
    from kcompile.callbacks import Callback

    if distribution.launched_size() > 1:  # under mpiexec: data-parallel, rank 0 speaks
        distribution.set_distribution(distribution.DataParallel())
    job = distribution.active()
    say = print if job is None or job.rank == 0 else (lambda *a, **k: None)
    try:
        loaded = kcompile.load(args.artifact)
        (xs, ys), val = read_folder(args.data, loaded.input_names, loaded.label_names)
    except (ArtifactError, OSError, ValueError) as e:
        raise SystemExit(f"kcompile: {e}") from None
    except KeyboardInterrupt:  # while loading: nothing trained, nothing to save
        print("\nstopped before training", file=sys.stderr)
        return 130
    checkpoint = args.checkpoint or args.artifact

    class Checkpoint(Callback):
        def on_epoch_end(self, epoch, logs=None):
            loaded.save(checkpoint)

    start = loaded.epochs_done
    if start >= args.epochs:
        say(f"{args.artifact}: {start} epochs already done (asked for {args.epochs})")
        return 0
    say(f"training {args.artifact} from epoch {start + 1} to {args.epochs}")
    try:
        loaded.fit(
            xs if len(xs) > 1 else xs[0],
            ys if len(ys) > 1 else ys[0],
            batch_size=args.batch_size,
            epochs=args.epochs,
            initial_epoch=start,
            validation_data=None if val is None else (val[0][0], val[1][0]),
            callbacks=[Checkpoint()],
            verbose=args.verbose,
        )
    except (ValueError, TypeError) as e:  # data that does not fit the artifact
        raise SystemExit(f"kcompile: {args.data}: {e}") from None
    except KeyboardInterrupt:
        # The weights are those of the last finished step, but a checkpoint stands for
        # whole epochs (so that resuming repeats training exactly): keep the last one.
        say(f"\nstopped; {checkpoint} holds {loaded.epochs_done} finished epochs")
        return 130
    say(f"checkpoint: {checkpoint} ({loaded.epochs_done} epochs done)")
    return 0


def cmd_fuzz(args) -> int:
    """Random models and graphs against the reference interpreter, or mutated IR dumps
    against the parser; exits 1 when any case failed."""
    if args.count is None and args.minutes is None:
        args.count = 100
    if args.kind == "parser":
        from kcompile.tools.fuzz.mutate import fuzz_parser

        counts = fuzz_parser(seed=args.seed, count=args.count or 10_000, report=print)
        print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
        return 1 if counts.get("escaped", 0) else 0
    from kcompile.tools.fuzz.runner import FAILURES, fuzz, summary

    kinds = ("model", "graph") if args.kind == "all" else (args.kind,)
    counts = fuzz(
        seed=args.seed,
        count=args.count,
        minutes=args.minutes,
        jobs=args.jobs,
        kinds=kinds,
        timeout=args.timeout,
        out=args.out,
    )
    print(summary(counts))
    return 1 if any(outcome in FAILURES for _, outcome in counts.elements()) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kcompile", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ir = sub.add_parser("ir", help="print the IR of one stage of a model")
    ir.add_argument("model", help="a Python file defining build_model()")
    ir.add_argument("--step", choices=STEPS, default="train")
    ir.add_argument(
        "--stage", default="train", help="forward, predict, eval, train, or a stage of --step"
    )
    ir.add_argument(
        "--all",
        metavar="DIR",
        help="compile every step, dumping its stages, LLVM IR and assembly to DIR/<step graph>/ "
        "(the tree KCOMPILE_DUMP=DIR writes)",
    )
    ir.add_argument("--dot", action="store_true", help="Graphviz text instead of IR")
    ir.add_argument(
        "--input-shape",
        action="append",
        metavar="D,D",
        help="an Input's shape without the batch, once per Input (for Inputs with None sizes)",
    )
    ir.add_argument("-o", "--output", help="write to this file instead of stdout")
    ir.set_defaults(run=cmd_ir)
    mem = sub.add_parser("memory", help="print the memory report of a step")
    mem.add_argument("model")
    mem.add_argument("--step", choices=STEPS, default="train")
    mem.add_argument("--budget", help="also print the largest batch that fits, e.g. 64MiB")
    mem.set_defaults(run=cmd_memory)
    chk = sub.add_parser("check", help="find the first pass or codegen that changes results")
    chk.add_argument("model")
    chk.add_argument("--step", choices=(*STEPS, "all"), default="all")
    chk.set_defaults(run=cmd_check)
    comp = sub.add_parser("compile", help="compile a model or a .kir dump to native code")
    comp.add_argument("source", help="a model file (build_model()) or a graph dump (.kir)")
    comp.set_defaults(run=cmd_compile)
    prof = sub.add_parser("profile", help="time each kernel of a step's compiled code")
    prof.add_argument("model")
    prof.add_argument("--step", choices=STEPS, default="train")
    prof.add_argument("--batch", type=int, default=32)
    prof.add_argument("--calls", type=int, default=100)
    prof.add_argument("--top", type=int, default=25, help="show this many kernels")
    prof.set_defaults(run=cmd_profile)
    rep = sub.add_parser("report", help="write one HTML page of a step's stages and profile")
    rep.add_argument("model")
    rep.add_argument("-o", "--output", required=True, help="the HTML file, e.g. report.html")
    rep.add_argument("--step", choices=STEPS, default="train")
    rep.add_argument("--batch", type=int, default=32, help="rows of the profiled batch")
    rep.add_argument("--calls", type=int, default=20, help="calls the profile times")
    rep.add_argument(
        "--input-shape",
        action="append",
        metavar="D,D",
        help="an Input's shape without the batch, once per Input (for Inputs with None sizes)",
    )
    rep.set_defaults(run=cmd_report)
    build = sub.add_parser("build", help="write an ahead-of-time artifact of a model")
    build.add_argument("model")
    build.add_argument("-o", "--output", required=True, help="the artifact file, e.g. model.kc")
    build.add_argument("--seed", type=int, default=0, help="seed of the shuffling of `run`")
    build.add_argument(
        "--cpu",
        default="host",
        help="host (this CPU, every feature it has) or x86-64-v2/-v3/-v4 (any CPU with it)",
    )
    build.set_defaults(run=cmd_build)
    info = sub.add_parser("info", help="print an artifact's manifest")
    info.add_argument("artifact")
    info.add_argument("--json", action="store_true", help="the whole manifest as JSON")
    info.set_defaults(run=cmd_info)
    run = sub.add_parser("run", help="train an artifact on data from a folder")
    run.add_argument("artifact")
    run.add_argument("--data", required=True, help="a folder of .npy files or IDX files")
    run.add_argument("--epochs", type=int, required=True, help="train up to this many epochs")
    run.add_argument("--batch-size", type=int, default=None)
    run.add_argument("--checkpoint", help="where to save after each epoch (the artifact)")
    run.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    run.set_defaults(run=cmd_run)
    fz = sub.add_parser("fuzz", help="check random models and graphs against the reference")
    fz.add_argument("--kind", choices=("all", "model", "graph", "parser"), default="all")
    fz.add_argument(
        "--seed", type=int, default=0, help="the first seed; cases take seed, seed+1, ..."
    )
    fz.add_argument("--count", type=int, help="this many cases (default 100 without --minutes)")
    fz.add_argument("--minutes", type=float, help="run for this long")
    fz.add_argument("--jobs", type=int, default=1, help="cases run at once")
    fz.add_argument("--timeout", type=float, default=120.0, help="seconds before a case hangs")
    fz.add_argument("--out", default="fuzz-failures", help="where reproductions go")
    fz.set_defaults(run=cmd_fuzz)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
