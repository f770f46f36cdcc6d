"""One definition of the cell key columns (genbench.tables.keys): the 2D cell is config.Cell, and no Python module
spells the key list again."""

import re
from dataclasses import fields
from pathlib import Path

from genbench.config import Cell
from genbench.tables.keys import CELL_KEYS, CELL_KEYS_BY_DATASET, GEN2D_KEYS, GEN2D_TABLE_KEYS, RECON3D_SUMMARY_KEYS

ROOT = Path(__file__).resolve().parents[1]


def test_cell_keys_are_the_cell_fields():
    assert CELL_KEYS == tuple(f.name for f in fields(Cell)) == ("model", "dataset", "steps", "cfg", "seed")
    assert sorted(CELL_KEYS_BY_DATASET) == sorted(CELL_KEYS) and CELL_KEYS_BY_DATASET[:2] == ("dataset", "model")
    assert GEN2D_KEYS[-1] == GEN2D_TABLE_KEYS[-1] == RECON3D_SUMMARY_KEYS[-1] == "metric"


def test_no_python_file_spells_the_cell_keys_again():
    # a whole key list (tests may still spell out an exported table's expected header, which goes on)
    five = re.compile(r'"(?:dataset|model)", "(?:dataset|model)", "steps", "cfg", "seed"'
                      r'(?:, "label_id")?(?:, "metric")?\]')
    spelled = [str(p.relative_to(ROOT)) for folder in ("workflow/genbench", "tests", "benchmarks")
               for p in (ROOT / folder).rglob("*.py")
               if p.name not in ("keys.py", "test_keys.py") and five.search(p.read_text())]
    assert spelled == []
