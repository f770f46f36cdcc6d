# Thin entry point for the rules of workflow/rules/statistics.smk: unpack the rule, call one genbench stage.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (workflow/ holds genbench)
from genbench import stages  # noqa: E402

sm = snakemake  # noqa: F821
stages.setup_logging(sm.log[0], sm.threads)
if sm.rule == "figure_selection_stability":
    stages.stage_figure_stability(sm.input.table, sm.output.pdf, sm.output.png, sm.output.data)
elif sm.rule == "figure_metric_correlation":
    stages.stage_figure_correlation(sm.input.table, sm.output.pdf, sm.output.png, sm.output.data)
elif sm.rule == "metric_validation":
    stages.stage_metric_validation(sm.params.dataset, sm.input.manifest, sm.params.config, sm.params.checkpoint,
                                   sm.params.config_hash, sm.output.table, sm.output.html, sm.output.noise_floor,
                                   sm.output.noise_floor_html, sm.params.embedders)
elif sm.rule == "pairwise_3d":
    stages.stage_pairwise_3d(sm.input.per_item, sm.params.config, sm.params.config_hash, sm.output.table,
                             sm.output.html)
else:
    real = dict(zip(sm.params.datasets, sm.input.real, strict=True))
    if sm.rule == "pairwise_gen2d":
        stages.stage_pairwise_gen2d(sm.params.cells, list(sm.input.gen), real, sm.params.config,
                                    sm.params.config_hash, sm.output.table, sm.output.html)
    else:
        text_image = {role: (dict(zip(sm.params.datasets, sm.input[f"{role}_real"], strict=True)),
                             list(sm.input[f"{role}_gen"])) for role in sm.params.roles}
        stages.stage_selection_stability(sm.params.cells, list(sm.input.gen), real, text_image, sm.params.config,
                                         sm.params.config_hash, sm.output.table, sm.output.html)
