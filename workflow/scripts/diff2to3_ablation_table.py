# Thin entry point: unpack the rule, call one genbench stage.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (workflow/ holds genbench)
from genbench.stages import setup_logging, stage_diff2to3_ablation_table  # noqa: E402

sm = snakemake  # noqa: F821
setup_logging(sm.log[0], sm.threads)
stage_diff2to3_ablation_table(list(sm.input.tables), sm.params.config, sm.params.config_hash, sm.output.table,
                         sm.output.csv)
