# Thin entry point: unpack the rule, call one genbench stage.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (workflow/ holds genbench)
from genbench.stages import setup_logging, stage_embed_gen  # noqa: E402

sm = snakemake  # noqa: F821
setup_logging(sm.log[0], sm.threads)
w = sm.wildcards
stage_embed_gen(w.embedder, sm.params.config, sm.params.checkpoint, list(sm.input.shards),
                f"{w.model}/{w.dataset}/steps{w.steps}_cfg{w.cfg}/seed{w.seed}", sm.output.embeddings)
