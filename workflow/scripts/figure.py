# Thin entry point: unpack the rule, call one genbench stage.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (workflow/ holds genbench)
from genbench.stages import setup_logging, stage_figure  # noqa: E402

sm = snakemake  # noqa: F821
setup_logging(sm.log[0], sm.threads)
# figures that show samples get the cells' grid PNGs and, in the same order, the cells' paths
grids = dict(zip(sm.params.get("cells", []), sm.input.get("grids", []), strict=True))
stage_figure(sm.params.name, sm.input.table, sm.output.pdf, sm.output.png, sm.output.data, grids=grids,
             confidence=sm.params.confidence, pairwise=sm.input.get("pairwise"))
