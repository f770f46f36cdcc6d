# Thin entry point of the protocol-delta rules: unpack the rule, call one genbench stage.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (workflow/ holds genbench)
from genbench import stages  # noqa: E402

sm = snakemake  # noqa: F821
stages.setup_logging(sm.log[0], sm.threads)
if sm.rule == "protocol_delta_2d":
    stages.stage_protocol_delta_2d(sm.params.config, dict(sm.params.files), dict(sm.params.knobs), sm.output.table)
elif sm.rule == "protocol_features_gen":
    stages.stage_protocol_features_gen(sm.wildcards.knob, sm.wildcards.extractor, sm.params.config,
                                       sm.params.checkpoint, list(sm.input.shards), sm.params.set_name,
                                       sm.output.features, threads=sm.threads, model=sm.wildcards.model)
elif sm.rule == "protocol_embed_prompts":
    stages.stage_protocol_embed_prompts(sm.wildcards.embedder, sm.params.config, sm.params.checkpoint,
                                        sm.input.manifest, sm.wildcards.dataset, sm.output.embeddings)
elif sm.rule == "protocol_delta_3d":
    stages.stage_protocol_delta_3d(sm.wildcards.dataset3d, sm.params.config, sm.input.manifest, list(sm.input.recon),
                                   list(sm.input.scores), sm.output.table)
elif sm.rule == "protocol_delta":
    stages.stage_protocol_delta(list(sm.input.parts), sm.params.config_hash, sm.output.table, sm.output.html)
else:
    stages.stage_figure_protocol_delta(sm.input.table, sm.output.pdf, sm.output.png, sm.output.data,
                                       sm.params.confidence)
