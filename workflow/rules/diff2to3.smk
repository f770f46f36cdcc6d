# The toy Diff2to3's paper tables (docs/diff2to3.md), present when the config has a `diff2to3` section
# (config/diff2to3.yaml; `make diff2to3-vae`). Table 1 (diff2to3_vae): one CPU job per (feature source, training
# seed), then the table with bootstrap intervals.


rule diff2to3_vae_run:
    output:
        table=layout.diff2to3_vae_run("{source}", "{seed}"),
        record=layout.diff2to3_vae_run("{source}", "{seed}", "json"),
    log:
        layout.log("diff2to3", "vae_{source}_seed{seed}"),
    benchmark:
        layout.benchmark("diff2to3", "vae_{source}_seed{seed}")
    wildcard_constraints:
        source="reconstructive|semantic",
    conda:
        "../envs/diff2to3.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        config=lambda wc: wiring.diff2to3_vae_config(),
    script:
        "../scripts/diff2to3_vae_run.py"


rule diff2to3_vae_table:
    input:
        tables=wiring.diff2to3_vae_runs(),
    output:
        table=layout.table("diff2to3_vae"),
        csv=layout.table("diff2to3_vae", "csv"),
    log:
        layout.log("aggregate", "diff2to3_vae"),
    benchmark:
        layout.benchmark("aggregate", "diff2to3_vae")
    conda:
        "../envs/metrics.yaml"
    params:
        config=select(config, "seed", "diff2to3"),
        config_hash=config_hash(config),
    script:
        "../scripts/diff2to3_vae_table.py"


# Table 3 (diff2to3_ablation): one CPU job per (experiment, training seed), then the table
rule diff2to3_ablation_run:
    output:
        table=layout.diff2to3_ablation_run("{exp}", "{seed}"),
        record=layout.diff2to3_ablation_run("{exp}", "{seed}", "json"),
    log:
        layout.log("diff2to3", "ablation_{exp}_seed{seed}"),
    benchmark:
        layout.benchmark("diff2to3", "ablation_{exp}_seed{seed}")
    wildcard_constraints:
        exp="exp1|exp2|exp3|exp4",
    conda:
        "../envs/diff2to3.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        config=lambda wc: wiring.diff2to3_ablation_config(),
    script:
        "../scripts/diff2to3_ablation_run.py"


rule diff2to3_ablation_table:
    input:
        tables=wiring.diff2to3_ablation_runs(),
    output:
        table=layout.table("diff2to3_ablation"),
        csv=layout.table("diff2to3_ablation", "csv"),
    log:
        layout.log("aggregate", "diff2to3_ablation"),
    benchmark:
        layout.benchmark("aggregate", "diff2to3_ablation")
    conda:
        "../envs/metrics.yaml"
    params:
        config=select(config, "seed", "diff2to3"),
        config_hash=config_hash(config),
    script:
        "../scripts/diff2to3_ablation_table.py"


# `snakemake diff2to3` (make diff2to3-vae, make diff2to3-ablation): the Diff2to3 tables the config asks for
rule diff2to3:
    input:
        wiring.diff2to3_targets(),
