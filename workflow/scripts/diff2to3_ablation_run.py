# Thin entry point: unpack the rule, call one genbench stage.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (workflow/ holds genbench)
from genbench.stages import setup_logging, stage_diff2to3_ablation_run  # noqa: E402

sm = snakemake  # noqa: F821
setup_logging(sm.log[0], sm.threads)
stage_diff2to3_ablation_run(sm.params.config, sm.wildcards.exp, int(sm.wildcards.seed), sm.output.table,
                            sm.output.record, sm.threads)
