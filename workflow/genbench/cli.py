"""The ``genbench`` command: small helpers around the pipeline (the pipeline itself runs with ``snakemake``).

    genbench validate config/paper.yaml      check a config against the schema (exit 1 with the errors)
    genbench cells config/config.yaml        list the sweep's cells (model, data set, steps, cfg, seed)
    genbench provenance results/tables/gen2d_metrics.parquet   print a table's provenance metadata
    genbench diff A B [--tolerances FILE]    compare two results trees or files (exit 1 on a difference
                                             beyond tolerance, 2 on unusable input)
    genbench snapshot RESULTS DEST --tolerances FILE   copy the files FILE includes (e.g. refresh tests/golden)
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
    args = ap.parse_args(argv)

    if args.command in ("diff", "snapshot"):
        return _diff_commands(args)

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


if __name__ == "__main__":
    sys.exit(main())
