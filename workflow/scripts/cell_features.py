# Thin entry point: unpack the rule, call one genbench stage.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (workflow/ holds genbench)
from genbench.stages import setup_logging, stage_cell_features  # noqa: E402

sm = snakemake  # noqa: F821
setup_logging(sm.log[0], sm.threads)
stage_cell_features(sm.params.config, dict(sm.params.checkpoints), list(sm.input.shards), sm.params.set_name,
                    dict(sm.output.items()), threads=sm.threads,
                    model=sm.wildcards.model, spatial=list(sm.params.spatial))
