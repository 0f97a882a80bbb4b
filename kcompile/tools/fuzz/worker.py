"""One fuzz case in its own process: ``python -m kcompile.tools.fuzz.worker model|graph SEED`` or
``... model --spec FILE``. Prints one JSON line with the outcome; a crash or a hang is
what the parent sees when no line comes."""

from __future__ import annotations

import argparse
import json
import sys
import traceback


def _outcome(run) -> dict:
    from kcompile.tools.fuzz.oracle import Mismatch

    try:
        run()
    except Mismatch as e:
        return {"outcome": "mismatch", "stage": e.stage, "message": str(e)}
    except NotImplementedError as e:
        return {"outcome": "unsupported", "message": f"{e}"}
    except Exception as e:
        where = traceback.extract_tb(e.__traceback__)[-1]
        return {
            "outcome": "error",
            "message": f"{type(e).__name__}: {e}",
            "where": f"{where.filename}:{where.lineno}",
        }
    return {"outcome": "ok"}


def _model_case(args) -> callable:
    from kcompile.tools.fuzz.generate import random_model
    from kcompile.tools.fuzz.oracle import check_source
    from kcompile.tools.fuzz.spec import ModelSpec, render

    if args.spec:
        with open(args.spec) as f:
            spec = ModelSpec.from_json(f.read())
    else:
        spec = random_model(args.seed)
    return lambda: check_source(render(spec), spec)


def _graph_case(args) -> callable:
    from kcompile.tools.fuzz.graphs import check_graph, random_graph

    return lambda: check_graph(random_graph(args.seed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kcompile.tools.fuzz.worker")
    parser.add_argument("kind", choices=("model", "graph"))
    parser.add_argument("seed", type=int, nargs="?", default=0)
    parser.add_argument("--spec", help="a model spec (JSON) instead of a seed")
    args = parser.parse_args(argv)
    case = _model_case(args) if args.kind == "model" else _graph_case(args)
    result = _outcome(case)
    sys.stdout.write("\nKCOMPILE-FUZZ " + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
