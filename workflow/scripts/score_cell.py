# Thin entry point: unpack the rule, call one genbench stage.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (workflow/ holds genbench)
from genbench.stages import setup_logging, stage_score  # noqa: E402

sm = snakemake  # noqa: F821
setup_logging(sm.log[0], sm.threads)
text_image = {role: (sm.input[f"{role}_real"], sm.input[f"{role}_gen"]) for role in ("clip", "pick")
              if f"{role}_real" in sm.input.keys()}
dinov2 = (sm.input.dinov2_real, sm.input.dinov2_gen) if "dinov2_real" in sm.input.keys() else None
stage_score(sm.params.cell, sm.params.config, sm.input.real, sm.input.gen, sm.input.manifest, sm.output.table,
            sm.output.per_class, text_image=text_image, dinov2=dinov2)
