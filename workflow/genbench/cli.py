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
    genbench plan [--configfile config/paper.yaml] [--pilot DIR] [--costs FILE]
                                             jobs, GPU-hours, CPU-hours and disk per rule, before submitting

Every command exits 0 on success and 2 on unusable input (a missing or unreadable file, YAML that does not parse,
a file that is not Parquet or .npz, bad arguments), printing one line that names the file, never a traceback; 1
means the command's answer is "no" (an invalid config, a difference, a missing weight). Output cut short by the
reader (``genbench cells ... | head``) ends quietly with 141, as for a Unix tool stopped by SIGPIPE.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from pathlib import Path

import yaml

from . import __version__
from .config import ConfigError, cells, config_hash, load_config
from .errors import GenbenchError
from .layout import fmt_cfg

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader went away
UNUSABLE = "2  unusable input: a missing or unreadable file, YAML that does not parse, a wrong file type, bad arguments"


class InputError(GenbenchError):
    """Unusable input to a command: reported as one line, exit 2 (as is any other :class:`GenbenchError` a command
    meets)."""


def _exit_codes(*lines: str) -> str:
    return "exit status:\n  " + "\n  ".join(("0  success", *lines, UNUSABLE))


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    ap = argparse.ArgumentParser(prog="genbench", description=__doc__.splitlines()[0], formatter_class=fmt,
                                 epilog=_exit_codes("1  the command's answer is no (see each command's --help)"))
    ap.add_argument("--version", action="version", version=f"genbench {__version__}",
                    help="print genbench's version and exit")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND",
                            help="one of the commands below; `genbench COMMAND --help` describes it")

    def command(name: str, help: str, *codes: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=_exit_codes(*codes), formatter_class=fmt)

    p = command("validate", "validate a config file against the schema (the schema's defaults filled in)",
                "1  the config is invalid (each error printed with its key path)")
    p.add_argument("config", help="the config YAML, e.g. config/paper.yaml")
    p = command("cells", "list the cells of a config's sweep (tab-separated: model, data set, steps, cfg, seed)")
    p.add_argument("config", help="the config YAML, e.g. config/config.yaml (an invalid config exits 2)")
    p = command("provenance", "print the provenance metadata of a genbench Parquet table (JSON)")
    p.add_argument("table", help="a Parquet table the pipeline wrote, e.g. results/tables/gen2d_metrics.parquet")
    p = command("diff", "compare two results trees (or two files) within tolerances",
                "1  a difference beyond tolerance (listed per file)")
    p.add_argument("a", help="the reference tree or file (e.g. tests/golden)")
    p.add_argument("b", help="the tree or file to check (e.g. results)")
    p.add_argument("--tolerances", "-t", help="YAML file: include/ignore patterns, key columns, tolerances "
                   "(default: every file, exact)")
    p.add_argument("--max-lines", type=int, default=20, help="differences printed per file (default %(default)s)")
    p = command("snapshot", "copy the files a tolerance file includes from a results tree (e.g. refresh "
                "tests/golden)")
    p.add_argument("results", help="the results tree to copy from, e.g. .golden-run/results")
    p.add_argument("dest", help="the folder to copy into, e.g. tests/golden")
    p.add_argument("--tolerances", "-t", required=True, help="YAML file whose 'include' patterns select the files")
    p = command("fetch", "download and verify the weights a config needs (on a connected machine)",
                "1  a weight is missing (--dry-run) or its download or checksum failed (each one named)")
    p.add_argument("config", help="the config YAML whose weights entries to fetch, e.g. config/paper.yaml")
    p.add_argument("--root", default="resources/weights", help="where Hugging Face files go (default %(default)s)")
    p.add_argument("--only", nargs="+", metavar="OWNER", help="only these entries, e.g. extractors.inception")
    p.add_argument("--dry-run", action="store_true", help="only report which weights are present or missing")
    p = command("compare", "paired bootstrap comparison of two cells (features .npz files)")
    p.add_argument("real", help="features of the real set, e.g. results/features/<ex>/real/<dataset>.npz")
    p.add_argument("a", help="features of cell A (results/features/<ex>/gen/<model>/<dataset>/.../seedN.npz)")
    p.add_argument("b", help="features of cell B (same data set items)")
    p.add_argument("--metric", default="fid", choices=["fid", "is"],
                   help="the metric whose difference is bootstrapped (default %(default)s)")
    p.add_argument("--n-boot", type=int, default=1000,
                   help="bootstrap resamples (default %(default)s); the p-value's resolution is 2/N")
    p.add_argument("--confidence", type=float, default=0.95, help="CI level (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default %(default)s)")
    p.add_argument("--is-splits", type=int, default=10, help="Inception Score splits (default %(default)s)")
    p = command("review", "serve the proofreading page of a curated data set on 127.0.0.1 (Ctrl-C stops)")
    p.add_argument("curation_dir", help="results/curate/<dataset> (holds review_queue.parquet)")
    p.add_argument("--decisions", required=True, help="this reviewer's decision file (JSON lines; appended)")
    p.add_argument("--reviewer", required=True, help="the reviewer's name, stored with every decision")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default %(default)s; 0 = any)")
    p = command("plan", "jobs, items, GPU-hours, CPU-hours, peak memory and disk per rule of a config, from a dry "
                "run and the recorded costs of jobs that already ran (docs/scale.md)")
    p.add_argument("--configfile", help="the config to plan, e.g. config/paper.yaml (default: the workflow's "
                   "config/config.yaml)")
    p.add_argument("--directory", "-d", default=".", help="the workflow's folder (default: the current one)")
    p.add_argument("--pilot", help="a folder whose jobs already ran (their benchmark records and outputs give the "
                   "costs; default: --directory, i.e. the config's own results so far)")
    p.add_argument("--pilot-configfile", help="the config the pilot ran with (default: --configfile)")
    p.add_argument("--costs", nargs="+", default=[], metavar="FILE",
                   help="YAML costs per rule, overriding the pilot's for the rules they name (docs/scale.md)")
    p.add_argument("--items", nargs="+", default=[], metavar="NAME=N",
                   help="items of a data set that is not prepared yet and whose size the config does not fix")
    p.add_argument("--csv", help="also write the plan per rule to this CSV file")
    return ap


def one_line(exc: BaseException) -> str:
    """A one-line description of an input error, naming the file where the exception knows it."""
    if isinstance(exc, GenbenchError):
        return str(exc) or type(exc).__name__  # one line naming the item and the fix
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return (f"{mark.name}: not valid YAML: {exc.problem} (line {mark.line + 1}, column {mark.column + 1}); "
                "fix the file's syntax")
    if isinstance(exc, UnicodeDecodeError):
        return f"not a UTF-8 text file ({exc.reason} at byte {exc.start})"
    return " ".join(str(exc).split()) or type(exc).__name__


# what unusable input raises (any GenbenchError: it names the item and the fix); BrokenPipeError (an OSError) is
# handled before these
INPUT_ERRORS = (GenbenchError, OSError, yaml.YAMLError, UnicodeDecodeError, zipfile.BadZipFile, EOFError)


def main(argv: list[str] | None = None) -> int:
    try:
        code = _run(argv)
        sys.stdout.flush()  # a closed pipe shows here when the output was buffered
        return code
    except BrokenPipeError:
        # the reader (e.g. `| head`) has gone: stop quietly; stdout goes to /dev/null so that the interpreter's
        # final flush does not raise again
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_BROKEN_PIPE


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"compare": _compare, "review": _review, "diff": _diff_commands, "snapshot": _diff_commands,
                "fetch": _fetch, "validate": _config_commands, "cells": _config_commands, "provenance": _provenance,
                "plan": _plan}
    try:
        return handlers[args.command](args)
    except BrokenPipeError:
        raise
    except INPUT_ERRORS as exc:
        print(f"genbench {args.command}: {one_line(exc)}", file=sys.stderr)
        return 2


def _config_commands(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 1 if args.command == "validate" else 2
    if args.command == "validate":
        print(f"{args.config}: valid (config hash {config_hash(config)}, {len(cells(config))} cells)")
    else:
        print("model\tdataset\tsteps\tcfg\tseed")
        for c in cells(config):
            print(f"{c.model}\t{c.dataset}\t{c.steps}\t{fmt_cfg(c.cfg)}\t{c.seed}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from . import plan

    try:
        given = {}
        for item in args.items:
            name, _, n = item.partition("=")
            if not n.isdigit():
                raise plan.PlanError(f"--items {item}: expected NAME=N with N a whole number, e.g. relaionet=12000")
            given[name] = int(n)
        config = plan.load_run_config(args.directory, args.configfile)
        sizes = plan.dataset_sizes(config, args.directory, given)
        jobs = plan.dry_run(args.directory, args.configfile)
        pilot = args.pilot or args.directory
        pilot_config = args.pilot_configfile or args.configfile
        same = Path(pilot).resolve() == Path(args.directory).resolve() and pilot_config == args.configfile
        costs = plan.costs_from_run(pilot, pilot_config, jobs=jobs if same else None)
        for path in args.costs:
            costs.update(plan.costs_from_file(path))
    except plan.PlanError as exc:
        raise InputError(str(exc)) from exc
    table = plan.make_plan(jobs, config, sizes, costs)
    if args.csv:
        from .io import atomic_path

        with atomic_path(args.csv) as tmp:
            table.to_csv(tmp, index=False)
    print(plan.format_plan(table, sizes))
    return 0


def _provenance(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from .tables import read_metadata

    try:
        meta = read_metadata(args.table)
    except pa.ArrowException as exc:
        if os.path.isdir(args.table):
            raise InputError(f"{args.table}: a folder; give one Parquet table") from exc
        raise InputError(f"{args.table}: not a Parquet table ({' '.join(str(exc).split())}); give a .parquet "
                         "file the pipeline wrote") from exc
    print(json.dumps(meta, indent=2, sort_keys=True))
    return 0


def _diff_commands(args: argparse.Namespace) -> int:
    from .tables.diff import DiffConfigError, Tolerances, diff_paths, snapshot

    try:
        tol = Tolerances.load(args.tolerances)
        if args.command == "snapshot":
            copied = snapshot(args.results, args.dest, tol)
        else:
            result = diff_paths(args.a, args.b, tol)
    except (DiffConfigError, ValueError) as exc:
        raise InputError(str(exc)) from exc
    if args.command == "snapshot":
        print(f"copied {len(copied)} file(s) to {args.dest}:")
        print("\n".join(f"  {c}" for c in copied))
        return 0
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
            raise InputError(f"{sorted(unknown)} have no weights in {args.config} "
                             f"(entries: {', '.join(s.owner for s in specs)})")
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
        except BrokenPipeError:
            raise
        except (ChecksumError, FetchError, OSError) as exc:
            print(f"FAILED   {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"fetched  {spec.owner}: {path}")
    return 1 if failed else 0


def _review(args: argparse.Namespace) -> int:
    import time

    from .curate.review import serve

    try:
        server = serve(args.curation_dir, args.decisions, args.reviewer, port=args.port)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
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
    from .metrics.compare import compare_cells, format_p_value
    from .metrics.fid import MetricInputError

    arrays = []
    for path in (args.real, args.a, args.b):
        try:
            arrays.append(load_npz(path))
        except (ValueError, zipfile.BadZipFile, EOFError) as exc:  # a text file, a truncated archive
            raise InputError(f"{path}: not a readable .npz features file ({' '.join(str(exc).split())})") from exc
    real, a, b = arrays
    cell_keys = ["item_id", "features" if args.metric == "fid" else "logits"]
    for path, arr, keys in ((args.real, real, ["features"]), (args.a, a, cell_keys), (args.b, b, cell_keys)):
        missing = [k for k in keys if k not in arr]
        if missing:
            raise InputError(f"{path}: no {missing} array(s) (has {sorted(arr)}); give the features file the "
                             f"pipeline wrote for this cell")
    try:
        r = compare_cells(real, a, b, args.metric, name_a=args.a, name_b=args.b, n_boot=args.n_boot,
                          confidence=args.confidence, seed=args.seed, is_splits=args.is_splits)
    except (MetricInputError, ValueError) as exc:
        raise InputError(str(exc)) from exc
    m = args.metric.upper()
    print(f"{m}(A) - {m}(B) = {r['diff']:.6g}  [{r['ci_low']:.6g}, {r['ci_high']:.6g}] "
          f"({100 * r['confidence']:g}% paired bootstrap CI, {r['n_boot']} resamples of {r['n_items']} items), "
          f"{format_p_value(r['p_value'], r['n_boot'])}")
    print(f"A = {args.a}\nB = {args.b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
