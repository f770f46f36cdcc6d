# 3D track after the inputs: reconstruct (one job per data set x reconstructor; GPU for external models, in their
# own env), score under every protocol (CPU), aggregate with bootstrap CIs, draw the figures.


rule reconstruct_3d:
    input:
        manifest="results/data3d/{dataset3d}/manifest.parquet",
    output:
        table="results/recon3d/{dataset3d}/{recon}/reconstructions.parquet",
    log:
        f"{LOGS}/reconstruct_3d/{{dataset3d}}/{{recon}}.log",
    benchmark:
        f"{BENCH}/reconstruct_3d/{{dataset3d}}/{{recon}}.tsv"
    conda:
        lambda wc: plugin_env("reconstructors", wc.recon)
    threads: 1
    resources:
        gpu=lambda wc: plugin("reconstructors", wc.recon).gpus,
        mem_mb=16000,
        runtime=lambda wc: 720 if plugin("reconstructors", wc.recon).gpus else 60,
    params:
        config=lambda wc: select(config, "seed", f"reconstructors.{wc.recon}"),
    script:
        "../scripts/reconstruct_3d.py"


rule score_3d:
    input:
        manifest="results/data3d/{dataset3d}/manifest.parquet",
        recon="results/recon3d/{dataset3d}/{recon}/reconstructions.parquet",
    output:
        table="results/metrics/recon3d/{dataset3d}/{recon}.parquet",
    log:
        f"{LOGS}/score_3d/{{dataset3d}}/{{recon}}.log",
    benchmark:
        f"{BENCH}/score_3d/{{dataset3d}}/{{recon}}.tsv"
    conda:
        "../envs/mesh.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        config=select(config, "seed", "recon3d.protocols"),
    script:
        "../scripts/score_3d.py"


rule aggregate_3d:
    input:
        tables=recon3d_tables(),
        appearance=appearance_tables(),
    output:
        per_item="results/tables/recon3d_items.parquet",
        summary="results/tables/recon3d_summary.parquet",
    log:
        f"{LOGS}/aggregate/recon3d.log",
    benchmark:
        f"{BENCH}/aggregate/recon3d.tsv"
    conda:
        "../envs/metrics.yaml"
    params:
        config=select(config, "seed", "recon3d", "reconstructors"),
        config_hash=config_hash(config),
    script:
        "../scripts/aggregate_3d.py"


# the summary as a paper table (Markdown, LaTeX) and, for the report, HTML
rule export_recon3d_table:
    input:
        table="results/tables/recon3d_summary.parquet",
    output:
        md="results/tables/recon3d_summary.md",
        tex="results/tables/recon3d_summary.tex",
        html=report(
            "results/tables/recon3d_summary.html",
            caption="../report/tables/recon3d_summary.rst",
            category="3D track",
            subcategory="Tables",
            labels={"table": "recon3d_summary"},
        ),
    log:
        f"{LOGS}/aggregate/export_recon3d_table.log",
    benchmark:
        f"{BENCH}/aggregate/export_recon3d_table.tsv"
    conda:
        "../envs/metrics.yaml"
    params:
        confidence=lambda wc: config["recon3d"]["bootstrap"]["confidence"],
    script:
        "../scripts/export_recon3d_table.py"


rule figure_recon3d_bars:
    input:
        table="results/tables/recon3d_summary.parquet",
    output:
        pdf="results/figures/recon3d_bars.pdf",
        png=report(
            "results/figures/recon3d_bars.png",
            caption="../report/figures/recon3d_bars.rst",
            category="3D track",
            subcategory="Figures",
            labels={"figure": "recon3d_bars"},
        ),
        data="results/figures/recon3d_bars.csv",
    log:
        f"{LOGS}/figures/recon3d_bars.log",
    benchmark:
        f"{BENCH}/figures/recon3d_bars.tsv"
    conda:
        "../envs/plots.yaml"
    params:
        name="recon3d_bars",
        confidence=lambda wc: config["recon3d"]["bootstrap"]["confidence"],
    script:
        "../scripts/figure_3d.py"


use rule figure_recon3d_bars as figure_recon3d_protocols with:
    input:
        table="results/tables/recon3d_items.parquet",
    output:
        pdf="results/figures/recon3d_protocols.pdf",
        png=report(
            "results/figures/recon3d_protocols.png",
            caption="../report/figures/recon3d_protocols.rst",
            category="3D track",
            subcategory="Figures",
            labels={"figure": "recon3d_protocols"},
        ),
        data="results/figures/recon3d_protocols.csv",
    log:
        f"{LOGS}/figures/recon3d_protocols.log",
    benchmark:
        f"{BENCH}/figures/recon3d_protocols.tsv"
    params:
        name="recon3d_protocols",
        confidence=lambda wc: config["recon3d"]["bootstrap"]["confidence"],


rule figure_recon3d_grid:
    input:
        table="results/tables/recon3d_items.parquet",
        manifests=expand("results/data3d/{d}/manifest.parquet", d=config.get("recon3d", {}).get("datasets", [])),
    output:
        pdf="results/figures/recon3d_grid.pdf",
        png=report(
            "results/figures/recon3d_grid.png",
            caption="../report/figures/recon3d_grid.rst",
            category="3D track",
            subcategory="Figures",
            labels={"figure": "recon3d_grid"},
        ),
        data="results/figures/recon3d_grid.csv",
    log:
        f"{LOGS}/figures/recon3d_grid.log",
    benchmark:
        f"{BENCH}/figures/recon3d_grid.tsv"
    conda:
        "../envs/plots.yaml"
    params:
        name="recon3d_grid",
        confidence=lambda wc: config["recon3d"]["bootstrap"]["confidence"],
        n_items=config.get("recon3d", {}).get("qualitative_items", 4),
    script:
        "../scripts/figure_3d.py"


# appearance (the Diff2to3 protocol): renders of the aligned prediction vs the GT's renders, same cameras; object
# data sets only (they have evaluation views)
rule appearance_3d:
    input:
        unpack(appearance_inputs),
    output:
        table="results/metrics/appearance3d/{dataset3d}/{recon}.parquet",
        sets="results/metrics/appearance3d/{dataset3d}/{recon}.sets.parquet",
    log:
        f"{LOGS}/appearance_3d/{{dataset3d}}/{{recon}}.log",
    benchmark:
        f"{BENCH}/appearance_3d/{{dataset3d}}/{{recon}}.tsv"
    conda:
        "../envs/metrics.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    params:
        config=lambda wc: select(config, "seed", "recon3d.appearance", *appearance_config_paths(), *RUNTIME_METRIC),
    script:
        "../scripts/appearance_3d.py"
