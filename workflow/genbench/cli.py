"""The ``genbench`` command: small helpers around the pipeline (the pipeline itself runs with ``snakemake``).

    genbench validate config/paper.yaml      check a config against the schema (exit 1 with the errors)
    genbench cells config/config.yaml        list the sweep's cells (model, data set, steps, cfg, seed)
    genbench provenance results/tables/gen2d_metrics.parquet   print a table's provenance metadata
    genbench diff A B [--tolerances FILE]    compare two results trees or files (exit 1 on a difference
                                             beyond tolerance, 2 on unusable input)
    genbench snapshot RESULTS DEST --tolerances FILE   copy the files FILE includes (e.g. refresh tests/golden)
    genbench fetch config/paper.yaml [--dry-run]     download and verify the config's weights (connected machine)
    genbench compare REAL.npz A.npz B.npz [--metric fid|is]   paired bootstrap of metric(A) - metric(B)
    genbench review results/curate/NAME --decisions FILE --reviewer NAME [--port 8765]
                                             the proofreading page of a curated data set, on 127.0.0.1
"""

from __future__ import annotations

import argparse
import json
import sys

from .config import ConfigError, cells, config_hash, load_config


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="genbench", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="validate a config file against the schema")
    p.add_argument("config")
    p = sub.add_parser("cells", help="list the cells of a config's sweep")
    p.add_argument("config")
    p = sub.add_parser("provenance", help="print the provenance metadata of a genbench Parquet table")
    p.add_argument("table")
    p = sub.add_parser("diff", help="compare two results trees (or two files) within tolerances")
    p.add_argument("a", help="the reference tree or file (e.g. tests/golden)")
    p.add_argument("b", help="the tree or file to check (e.g. results)")
    p.add_argument("--tolerances", "-t", help="YAML file: include/ignore patterns, key columns, tolerances")
    p.add_argument("--max-lines", type=int, default=20, help="differences printed per file (default 20)")
    p = sub.add_parser("snapshot", help="copy the files a tolerance file includes from a results tree")
    p.add_argument("results")
    p.add_argument("dest")
    p.add_argument("--tolerances", "-t", required=True)
    p = sub.add_parser("fetch", help="download and verify the weights a config needs (on a connected machine)")
    p.add_argument("config")
    p.add_argument("--root", default="resources/weights", help="where Hugging Face files go (default %(default)s)")
    p.add_argument("--only", nargs="+", metavar="OWNER", help="only these entries, e.g. extractors.inception")
    p.add_argument("--dry-run", action="store_true", help="only report which weights are present or missing")
    p = sub.add_parser("compare", help="paired bootstrap comparison of two cells (features .npz files)")
    p.add_argument("real", help="features of the real set, e.g. results/features/<ex>/real/<dataset>.npz")
    p.add_argument("a", help="features of cell A (results/features/<ex>/gen/<model>/<dataset>/.../seedN.npz)")
    p.add_argument("b", help="features of cell B (same data set items)")
    p.add_argument("--metric", default="fid", choices=["fid", "is"])
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--is-splits", type=int, default=10)
    p = sub.add_parser("review", help="serve the proofreading page of a curated data set on 127.0.0.1")
    p.add_argument("curation_dir", help="results/curate/<dataset> (holds review_queue.parquet)")
    p.add_argument("--decisions", required=True, help="this reviewer's decision file (JSON lines; appended)")
    p.add_argument("--reviewer", required=True, help="the reviewer's name, stored with every decision")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default %(default)s; 0 = any)")
    args = ap.parse_args(argv)

    if args.command == "compare":
        return _compare(args)
    if args.command == "review":
        return _review(args)
    if args.command in ("diff", "snapshot"):
        return _diff_commands(args)
    if args.command == "fetch":
        return _fetch(args)

    if args.command in ("validate", "cells"):
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            print(f"{args.config}: {exc}", file=sys.stderr)
            return 1
        if args.command == "validate":
            print(f"{args.config}: valid (config hash {config_hash(config)}, {len(cells(config))} cells)")
        else:
            print("model\tdataset\tsteps\tcfg\tseed")
            for c in cells(config):
                print(f"{c.model}\t{c.dataset}\t{c.steps}\t{c.cfg:g}\t{c.seed}")
        return 0
    from .tables import read_metadata

    print(json.dumps(read_metadata(args.table), indent=2, sort_keys=True))
    return 0


def _diff_commands(args: argparse.Namespace) -> int:
    from .tables.diff import DiffConfigError, Tolerances, diff_paths, snapshot

    try:
        tol = Tolerances.load(args.tolerances)
        if args.command == "snapshot":
            copied = snapshot(args.results, args.dest, tol)
            print(f"copied {len(copied)} file(s) to {args.dest}:")
            print("\n".join(f"  {c}" for c in copied))
            return 0
        result = diff_paths(args.a, args.b, tol)
    except (DiffConfigError, FileNotFoundError, ValueError, OSError) as exc:
        print(f"genbench {args.command}: {exc}", file=sys.stderr)
        return 2
    print(result.summary(max_per_file=args.max_lines))
    return 0 if result.ok else 1


def _fetch(args: argparse.Namespace) -> int:
    from .weights import ChecksumError, FetchError, WeightsMissingError, config_weights, fetch, resolve

    try:
        specs = config_weights(load_config(args.config))
    except ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 2
    if args.only:
        unknown = set(args.only) - {s.owner for s in specs}
        if unknown:
            print(f"genbench fetch: {sorted(unknown)} have no weights in {args.config} "
                  f"(entries: {', '.join(s.owner for s in specs)})", file=sys.stderr)
            return 2
        specs = [s for s in specs if s.owner in args.only]
    failed = 0
    for spec in specs:
        try:
            path = resolve(spec, args.root)
            print(f"present  {spec.owner}: {path}")
            continue
        except WeightsMissingError:
            pass
        if args.dry_run:
            print(f"missing  {spec.owner}: {spec.label}")
            failed += 1
            continue
        try:
            path = fetch(spec, args.root)
            print(f"fetched  {spec.owner}: {path}")
        except (ChecksumError, FetchError, OSError) as exc:
            print(f"FAILED   {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _review(args: argparse.Namespace) -> int:
    import time

    from .curate.review import serve

    try:
        server = serve(args.curation_dir, args.decisions, args.reviewer, port=args.port)
    except (FileNotFoundError, OSError, ValueError) as exc:
        print(f"genbench review: {exc}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    print(f"reviewing {args.curation_dir} as {args.reviewer}: open http://{host}:{port}/ "
          f"(decisions go to {args.decisions}; Ctrl-C stops, reopening resumes)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .io import load_npz
    from .metrics.compare import compare_cells
    from .metrics.fid import MetricInputError

    try:
        real, a, b = (load_npz(p) for p in (args.real, args.a, args.b))
        r = compare_cells(real, a, b, args.metric, name_a=args.a, name_b=args.b, n_boot=args.n_boot,
                          confidence=args.confidence, seed=args.seed, is_splits=args.is_splits)
    except (MetricInputError, OSError, KeyError, ValueError) as exc:
        print(f"genbench compare: {exc}", file=sys.stderr)
        return 2
    m = args.metric.upper()
    print(f"{m}(A) - {m}(B) = {r['diff']:.6g}  [{r['ci_low']:.6g}, {r['ci_high']:.6g}] "
          f"({100 * r['confidence']:g}% paired bootstrap CI, {r['n_boot']} resamples of {r['n_items']} items), "
          f"p = {r['p_value']:.3g}")
    print(f"A = {args.a}\nB = {args.b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
