# Thin entry point: unpack the rule, call one genbench stage.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (workflow/ holds genbench)
from genbench.stages import setup_logging, stage_figure_3d  # noqa: E402

sm = snakemake  # noqa: F821
setup_logging(sm.log[0], sm.threads)
stage_figure_3d(sm.params.name, sm.input.table, sm.output.pdf, sm.output.png, sm.output.data,
                manifests=list(sm.input.get("manifests", [])), n_items=sm.params.get("n_items", 4),
                confidence=sm.params.confidence)
