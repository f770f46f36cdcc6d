"""The ``genbench`` command: small helpers around the pipeline (the pipeline itself runs with ``snakemake``).

    genbench validate config/paper.yaml      check a config against the schema (exit 1 with the errors)
    genbench cells config/config.yaml        list the sweep's cells (model, data set, steps, cfg, seed)
    genbench provenance results/tables/gen2d_metrics.parquet   print a table's provenance metadata
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
    args = ap.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
