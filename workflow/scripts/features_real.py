# Thin entry point: unpack the rule, call one genbench stage.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (workflow/ holds genbench)
from genbench.stages import setup_logging, stage_features_real  # noqa: E402

sm = snakemake  # noqa: F821
setup_logging(sm.log[0], sm.threads)
stage_features_real(sm.wildcards.extractor, sm.params.config, sm.params.checkpoint, sm.input.manifest,
                    sm.wildcards.dataset, sm.output.features, threads=sm.threads, spatial=sm.params.spatial)
