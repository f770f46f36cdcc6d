"""The genbench command as a user meets it: one-line errors with exit 2 instead of tracebacks, quiet under
`| head`, --version, help for every command and argument with the exit codes, and the p-value's resolution."""

import argparse
import os
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from genbench.cli import build_parser, main
from genbench.io import save_npz
from genbench.metrics.compare import format_p_value


def one_line_error(capsys, *names):
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1, err  # one line
    assert "Traceback" not in err
    for name in names:
        assert str(name) in err, (name, err)
    return err


@pytest.fixture
def bad_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("models:\n  sit: {family: sit\nextractors: [\n")
    return path


@pytest.mark.parametrize("argv", [["validate", "{missing}"], ["cells", "{missing}"], ["fetch", "{missing}"],
                                  ["provenance", "{missing}"], ["diff", "{missing}", "{missing}"],
                                  ["diff", "{tmp}", "{tmp}", "-t", "{missing}"],
                                  ["compare", "{missing}", "{missing}", "{missing}"]])
def test_missing_file_is_one_line_and_exit_2(argv, tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert main([a.format(missing=missing, tmp=tmp_path) for a in argv]) == 2
    one_line_error(capsys, f"genbench {argv[0]}: ", missing)


@pytest.mark.parametrize("command", ["validate", "cells", "fetch", "diff"])
def test_bad_yaml_is_one_line_naming_file_and_line(command, bad_yaml, tmp_path, capsys):
    argv = [command, str(bad_yaml)] if command != "diff" else ["diff", str(tmp_path), str(tmp_path), "-t",
                                                                 str(bad_yaml)]
    assert main(argv) == 2
    one_line_error(capsys, bad_yaml, "not valid YAML", "line 3")


def test_binary_config_is_one_line(tmp_path, capsys):
    path = tmp_path / "image.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" * 10)
    assert main(["validate", str(path)]) == 2
    one_line_error(capsys, "genbench validate: ")


def test_invalid_config_exits_1_for_validate_and_2_for_cells(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("models: 3\n")
    assert main(["validate", str(path)]) == 1  # the answer: invalid
    assert "invalid genbench config" in capsys.readouterr().err
    assert main(["cells", str(path)]) == 2  # unusable input for listing cells
    assert "invalid genbench config" in capsys.readouterr().err


def test_non_parquet_input_is_one_line(tmp_path, capsys):
    text = tmp_path / "table.parquet"
    text.write_text("model,fid\nsit,3.1\n")
    assert main(["provenance", str(text)]) == 2
    one_line_error(capsys, text, "not a Parquet table")
    assert main(["provenance", str(tmp_path)]) == 2
    one_line_error(capsys, tmp_path)


def test_non_npz_and_wrong_npz_inputs_of_compare(tmp_path, capsys):
    bad = tmp_path / "features.npz"
    bad.write_text("not an archive")
    good = tmp_path / "real.npz"
    save_npz(good, features=np.zeros((4, 2)))
    assert main(["compare", str(good), str(bad), str(bad)]) == 2
    one_line_error(capsys, bad, "not a readable .npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:60])
    assert main(["compare", str(good), str(truncated), str(truncated)]) == 2
    one_line_error(capsys, truncated)
    assert main(["compare", str(good), str(good), str(good)]) == 2  # no item_id: not a cell's features file
    one_line_error(capsys, good, "'item_id'")


def test_no_broken_pipe_error_when_the_reader_goes_away(root):
    """`genbench cells config/paper.yaml | head -1`: the reader has closed the pipe before genbench writes."""
    r, w = os.pipe()
    os.close(r)
    env = dict(os.environ, PYTHONPATH=str(root / "workflow"))
    try:
        proc = subprocess.run([sys.executable, "-m", "genbench.cli", "cells", str(root / "config/paper.yaml")],
                              stdout=w, stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    finally:
        os.close(w)
    assert proc.stderr == ""
    assert proc.returncode == 141


def test_version(root, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out.strip() == f"genbench {version}"


def test_every_command_and_argument_has_help_and_exit_codes():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helped = {c.dest for c in sub._choices_actions if c.help}
    assert helped == set(sub.choices)  # every command is described in `genbench --help`
    assert "exit status:" in parser.format_help()
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
        text = p.format_help()
        assert "exit status:\n  0  success" in text and "\n  2  unusable input" in text, name
    assert "1  a difference beyond tolerance" in sub.choices["diff"].format_help()
    assert "1  the config is invalid" in sub.choices["validate"].format_help()


def test_compare_reports_the_p_value_bound_not_zero(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n, d = 200, 4
    items = np.array([f"i{k}" for k in range(n)])
    save_npz(tmp_path / "real.npz", features=rng.normal(size=(n, d)), item_id=items)
    save_npz(tmp_path / "a.npz", features=rng.normal(size=(n, d)), item_id=items)
    save_npz(tmp_path / "b.npz", features=rng.normal(size=(n, d)) + 3.0, item_id=items)  # far worse: p is 0
    args = [str(tmp_path / f"{x}.npz") for x in ("real", "a", "b")]
    assert main(["compare", *args, "--n-boot", "40"]) == 0
    out = capsys.readouterr().out
    assert "p < 0.05 (no replicate of 40 on the other side of zero)" in out and "p = 0" not in out
    assert format_p_value(0.0, 1000) == "p < 0.002 (no replicate of 1000 on the other side of zero)"
    assert format_p_value(0.046, 1000) == "p = 0.046"
    assert format_p_value(float("nan"), 0) == "p = nan"
