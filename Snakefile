# genbench: setting-matched benchmarking of generative models.
# Default config: the embedded mini-world (runs anywhere). Paper scale: --configfile config/paper.yaml
# (chosen by the slurm profile). Logic lives in workflow/genbench; rules only wire files to it.

# The default config is the mini-world; a --configfile (e.g. the slurm profile's config/paper.yaml) replaces it
# instead of being merged into it.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"



report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/curate.smk"
include: "workflow/rules/inputs3d.smk"
include: "workflow/rules/reconstruct.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/protocol_delta.smk"
include: "workflow/rules/statistics.smk"


rule all:
    input:
        all_targets(),
    default_target: True
