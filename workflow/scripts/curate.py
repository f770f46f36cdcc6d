# Thin entry point of the curation rules: unpack the rule, call its genbench.curate stage.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (workflow/ holds genbench)
from genbench.curate import stages  # noqa: E402
from genbench.stages import setup_logging  # noqa: E402

sm = snakemake  # noqa: F821
setup_logging(sm.log[0], sm.threads)
d, cfg, i, o = sm.wildcards.dataset, sm.params.config, sm.input, sm.output
ckpt = i.get("embedder")  # the trained stand-in's checkpoint, if the stage's embedder is one
if sm.rule == "laion_miniworld":
    stages.stage_laion_miniworld(d, cfg, i.eval_manifest, o.folder)
elif sm.rule == "laion_download":
    stages.stage_laion_download(d, cfg, o.folder)
elif sm.rule == "curate_ingest":
    stages.stage_ingest(d, cfg, sm.params.folder, o.candidates)
elif sm.rule == "curate_match":
    stages.stage_match(d, cfg, i.candidates, o.matched)
elif sm.rule == "curate_text_filter":
    stages.stage_text_filter(d, cfg, i.matched, ckpt, o.text)
elif sm.rule == "curate_checks":
    stages.stage_checks(d, cfg, i.text, ckpt, dict(sm.params.eval_sets), sm.params.folder, o.checks, o.queue)
elif sm.rule == "curate_final":
    stages.stage_final(d, cfg, i.text, i.checks, list(i.decisions), sm.params.folder, o.manifest, o.status)
elif sm.rule == "curate_datasheet":
    stages.stage_datasheet(d, cfg, i.text, i.checks, i.status, list(i.decisions), dict(o.items()))
else:
    raise ValueError(f"workflow/scripts/curate.py: no stage for rule {sm.rule}")
