# Thin entry point: unpack the rule, call one genbench stage.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (workflow/ holds genbench)
from genbench.stages import setup_logging, stage_generate  # noqa: E402

sm = snakemake  # noqa: F821
setup_logging(sm.log[0], sm.threads)
stage_generate(**sm.params.cell, shard=int(sm.wildcards.shard), config=sm.params.config,
               manifest_path=sm.input.manifest, checkpoint=sm.params.checkpoint, out=sm.output.shard,
               n_shards=sm.params.n_shards, batch_size=sm.params.batch_size)
