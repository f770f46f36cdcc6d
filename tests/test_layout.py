"""One place for every results path and one text form of a cell (genbench.layout): a rule's pattern and the
concrete path of a cell are the same expression, a cell's text reads back as the same cell, and no other file
spells the cell path again."""

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from genbench import config as config_module
from genbench import layout
from genbench.layout import CELL, CELL3D, Cell, Cell3D, fmt_cfg

ROOT = Path(__file__).resolve().parents[1]

CELLS = [Cell("sit_mini", "mw_val", 4, 1.5, 0), Cell("a.b-c", "d_1", 1, 1.0, 3), Cell("m", "d", 250, 1.42, 12),
         Cell("m", "d", 2, 10.0, 0), Cell("m", "d", 2, 0.25, 0)]

# every layout function of a 2D cell (with its other arguments), as (pattern-side, concrete-side) callables
CELL_PATHS = {
    "cell_dir": lambda c: layout.cell_dir(c),
    "shard": lambda c: layout.shard(c, 3),
    "grid": lambda c: layout.grid(c),
    "gen_features": lambda c: layout.gen_features("inception", c),
    "gen_embeddings": lambda c: layout.gen_embeddings("clip", c),
    "metric_table": lambda c: layout.metric_table(c),
    "metric_table_per_class": lambda c: layout.metric_table(c, per_class=True),
    "log": lambda c: layout.log("score_cell", c),
    "benchmark": lambda c: layout.benchmark("score_cell", c),
    "shard_log": lambda c: layout.log("generate", layout.shard_name(c, 3)),
}


def wildcards(cell: Cell) -> dict[str, str]:
    """The wildcards Snakemake would match in the cell's path (the text of each field)."""
    m = re.fullmatch(r"(.+)/(.+)/steps(\d+)_cfg(.+)/seed(\d+)", cell.path)
    return dict(zip(("model", "dataset", "steps", "cfg", "seed"), m.groups(), strict=True))


@pytest.mark.parametrize("cell", CELLS, ids=str)
@pytest.mark.parametrize("name", CELL_PATHS)
def test_a_cell_formatted_into_the_pattern_is_its_concrete_path(name, cell):
    path = CELL_PATHS[name]
    pattern = path(CELL)
    assert "{" in pattern and pattern.format(**wildcards(cell)) == path(cell)


def test_the_pattern_is_the_rules_wildcards():
    assert CELL.path == str(CELL) == "{model}/{dataset}/steps{steps}_cfg{cfg}/seed{seed}"
    assert layout.metric_table(CELL) == f"results/metrics/gen2d/{CELL.path}.parquet"
    assert layout.shard(CELL, "{shard}").endswith("/seed{seed}/shard-{shard}.npz")
    assert layout.reconstructions(CELL3D) == "results/recon3d/{dataset3d}/{recon}/reconstructions.parquet"
    assert layout.log("appearance_3d", CELL3D) == "results/logs/appearance_3d/{dataset3d}/{recon}.log"
    names = set(re.findall(r"\{(\w+)\}", CELL.path + CELL3D.path + layout.shard(CELL, "{shard}")))
    assert names <= set(layout.WILDCARDS)


def test_a_3d_cell_formatted_into_the_pattern_is_its_concrete_path():
    c = Cell3D("mw_solids", "revolution")
    for path in (layout.reconstructions, layout.recon3d_metrics, layout.appearance3d,
                 lambda c: layout.appearance3d(c, sets=True), lambda c: layout.log("score_3d", c)):
        assert path(CELL3D).format(dataset3d=c.dataset, recon=c.recon) == path(c)
    assert Cell3D.from_wildcards(SimpleNamespace(dataset3d="mw_solids", recon="revolution")) == c


@pytest.mark.parametrize("cell", CELLS, ids=str)
def test_wildcards_to_cell_to_path_round_trip(cell):
    wc = wildcards(cell)
    back = Cell.from_wildcards(SimpleNamespace(**wc))
    assert back == cell and back.path == cell.path == str(cell)
    assert Cell.parse(cell.path) == cell and Cell.from_mapping(cell.as_dict()) == cell
    for key, regex in layout.WILDCARDS.items():  # each field's text is what its wildcard constraint matches
        if key in wc:
            assert re.fullmatch(regex, wc[key]), (key, wc[key])


def test_as_dict_is_the_rules_cell_params():
    # rules pass Cell.from_wildcards(wc).as_dict() as params.cell: the types must not change (params trigger reruns)
    d = Cell.from_wildcards(SimpleNamespace(model="m", dataset="d", steps="4", cfg="1.5", seed="2")).as_dict()
    assert d == {"model": "m", "dataset": "d", "steps": 4, "cfg": 1.5, "seed": 2}
    assert [type(v) for v in d.values()] == [str, str, int, float, int]


def test_one_cell_one_text_whatever_its_source():
    import numpy as np

    row = {"model": "m", "dataset": "d", "steps": np.int64(4), "cfg": np.float64(2.0), "seed": np.int64(0),
           "family": "sit", "metric": "fid"}  # a table row, or a cell's facts: extra keys are ignored
    assert str(Cell.from_mapping(row)) == str(Cell("m", "d", 4, 2, 0)) == str(Cell("m", "d", "4", "2.0", "0"))
    assert str(Cell("m", "d", 4, 2, 0)) == "m/d/steps4_cfg2/seed0"  # the bootstrap seed key of this cell


def test_canonical_cfg_text():
    assert fmt_cfg(1.0) == fmt_cfg(1) == fmt_cfg("1.0") == "1"
    assert [fmt_cfg(v) for v in (1.5, 7.25, 1.42, 10.0, 0.25)] == ["1.5", "7.25", "1.42", "10", "0.25"]
    assert fmt_cfg(1.2345678) == "1.2345678" and float(fmt_cfg(1.2345678)) == 1.2345678  # no rounding (':g' did)
    assert config_module.fmt_cfg is fmt_cfg and config_module.Cell is Cell  # one definition


@pytest.mark.parametrize("text", ["m/d/steps1_cfg1.0/seed0", "m/d/steps1_cfg1.50/seed0", "m/d/steps01_cfg1/seed0",
                                  "m/d/steps1_cfg1/seed", "m/d/steps1/seed0", "m/d/x/steps1_cfg1/seed0",
                                  "m/d/steps1_cfg1e-05/seed0", "m/d/steps1_cfg01/seed0"])
def test_only_a_cells_own_text_parses(text):
    with pytest.raises(ValueError, match="not a cell path"):
        Cell.parse(text)


def test_the_cfg_wildcard_matches_only_the_canonical_text():
    for text in ("1", "1.5", "10", "1.42", "0.25", "0"):
        assert re.fullmatch(layout.WILDCARDS["cfg"], text) and fmt_cfg(text) == text
    for text in ("1.0", "1.50", "01", "1e-05", "1.", ".5"):
        assert not re.fullmatch(layout.WILDCARDS["cfg"], text), text


# A file that spells the cell path (the setting ``steps{..}_cfg{..}``, or ``steps1_cfg{..}``, in an f-string or a
# rule pattern) builds a cell's name or path on its own, which is how the float repr ('cfg1.0') once reached the
# bootstrap seed key.
SPELLS_A_CELL = re.compile(r"steps(\{+[^}]*\}+|\d+)_cfg\{")


def test_no_file_outside_layout_spells_the_cell_path():
    files = [p for folder in ("workflow", "tests", "benchmarks")
             for pattern in ("*.py", "*.smk", "Snakefile") for p in (ROOT / folder).rglob(pattern)]
    spelled = [str(p.relative_to(ROOT)) for p in files
               if p.name not in ("layout.py", "test_layout.py") and SPELLS_A_CELL.search(p.read_text())]
    assert spelled == []
    assert SPELLS_A_CELL.search('f"{m}/{d}/steps{s}_cfg{c:g}/seed{k}"')  # the check sees what it looks for
    assert SPELLS_A_CELL.search("{model}/{dataset}/steps{{steps}}_cfg{{cfg}}/seed{{seed}}")
    assert SPELLS_A_CELL.search('f"a/steps1_cfg{cfg:g}"') and not SPELLS_A_CELL.search("m/d/steps2_cfg2/seed0")


def test_rules_name_results_only_through_layout():
    literal = re.compile(r"""["']results/""")
    rules = [ROOT / "workflow/Snakefile", *(ROOT / "workflow/rules").glob("*.smk")]
    assert [str(p.relative_to(ROOT)) for p in rules if literal.search(p.read_text())] == []
