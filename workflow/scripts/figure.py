# Thin entry point: unpack the rule, call one genbench stage.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (workflow/ holds genbench)
from genbench.stages import setup_logging, stage_figure  # noqa: E402

sm = snakemake  # noqa: F821
setup_logging(sm.log[0], sm.threads)
# figures that show samples get the cells' grid PNGs and, in the same order, the cells' paths; figures that show
# images get every cell's shards with each shard's cell, and the data sets' manifests with their names
grids = dict(zip(sm.params.get("cells", []), sm.input.get("grids", []), strict=True))
tables = dict(zip(sm.params.get("table_names", []), sm.input.get("tables", []), strict=True))
shards = {}
for cell, shard in zip(sm.params.get("shard_cells", []), sm.input.get("shards", []), strict=True):
    shards.setdefault(cell, []).append(shard)
manifests = dict(zip(sm.params.get("datasets", []), sm.input.get("manifests", []), strict=True))
stage_figure(sm.params.name, sm.input.table, sm.output.pdf, sm.output.png, sm.output.data, grids=grids,
             confidence=sm.params.confidence, pairwise=sm.input.get("pairwise"), tables=tables, shards=shards,
             manifests=manifests, options=sm.params.get("options"))
