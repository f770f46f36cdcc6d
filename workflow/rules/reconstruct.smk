# 3D track after the inputs: reconstruct (one job per data set x reconstructor; GPU for external models, in their
# own env), score under every protocol (CPU), aggregate with bootstrap CIs, draw the figures.


# a reconstructor the pipeline trains itself (its entry's train:, e.g. the toy diff2to3; its trainer is
# catalog.RECONSTRUCTOR_TRAINERS'): on solids drawn for the purpose, never the evaluation data sets. The env is the
# diff2to3 one (torch + the solids' mesh stack), the only trainable kind's; tests/test_envs.py checks it holds the
# import closure of every trainer
rule train_reconstructor:
    output:
        weights=layout.reconstructor_weights("{recon}"),
        config=layout.reconstructor_weights("{recon}", "config.json"),
    log:
        layout.log("train_reconstructor", "{recon}"),
    benchmark:
        layout.benchmark("train_reconstructor", "{recon}")
    wildcard_constraints:
        recon=wiring.trained_reconstructors_regex(),
    conda:
        "../envs/diff2to3.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        config=lambda wc: wiring.reconstructor_config(wc.recon),
    script:
        "../scripts/train_reconstructor.py"


rule reconstruct_3d:
    input:
        unpack(per_cell3d(wiring.reconstructor_inputs)),
    output:
        table=layout.reconstructions(CELL3D),
    log:
        layout.log("reconstruct_3d", CELL3D),
    benchmark:
        layout.benchmark("reconstruct_3d", CELL3D)
    conda:
        lambda wc: wiring.plugin_env("reconstructors", wc.recon)
    threads: 1
    resources:
        gpu=lambda wc: wiring.plugin("reconstructors", wc.recon).gpus,
        mem_mb=16000,
        runtime=lambda wc: 720 if wiring.plugin("reconstructors", wc.recon).gpus else 60,
    params:
        config=lambda wc: wiring.reconstructor_config(wc.recon),
    script:
        "../scripts/reconstruct_3d.py"


rule score_3d:
    input:
        manifest=layout.manifest3d("{dataset3d}"),
        recon=layout.reconstructions(CELL3D),
    output:
        table=layout.recon3d_metrics(CELL3D),
    log:
        layout.log("score_3d", CELL3D),
    benchmark:
        layout.benchmark("score_3d", CELL3D)
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
        tables=wiring.recon3d_tables(),
        appearance=wiring.appearance_tables(),
    output:
        per_item=layout.table("recon3d_items"),
        summary=layout.table("recon3d_summary"),
    log:
        layout.log("aggregate", "recon3d"),
    benchmark:
        layout.benchmark("aggregate", "recon3d")
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
        table=layout.table("recon3d_summary"),
    output:
        md=layout.table("recon3d_summary", "md"),
        tex=layout.table("recon3d_summary", "tex"),
        html=report(
            layout.table("recon3d_summary", "html"),
            caption="../report/tables/recon3d_summary.rst",
            category="3D track",
            subcategory="Tables",
            labels={"table": "recon3d_summary"},
        ),
    log:
        layout.log("aggregate", "export_recon3d_table"),
    benchmark:
        layout.benchmark("aggregate", "export_recon3d_table")
    conda:
        "../envs/metrics.yaml"
    params:
        confidence=lambda wc: config["recon3d"]["bootstrap"]["confidence"],
    script:
        "../scripts/export_recon3d_table.py"


rule figure_recon3d_bars:
    input:
        table=layout.table("recon3d_summary"),
    output:
        pdf=layout.figure("recon3d_bars", "pdf"),
        png=report(
            layout.figure("recon3d_bars", "png"),
            caption="../report/figures/recon3d_bars.rst",
            category="3D track",
            subcategory="Figures",
            labels={"figure": "recon3d_bars"},
        ),
        data=layout.figure("recon3d_bars", "csv"),
    log:
        layout.log("figures", "recon3d_bars"),
    benchmark:
        layout.benchmark("figures", "recon3d_bars")
    conda:
        "../envs/plots.yaml"
    params:
        name="recon3d_bars",
        confidence=lambda wc: config["recon3d"]["bootstrap"]["confidence"],
    script:
        "../scripts/figure_3d.py"


use rule figure_recon3d_bars as figure_recon3d_protocols with:
    input:
        table=layout.table("recon3d_items"),
    output:
        pdf=layout.figure("recon3d_protocols", "pdf"),
        png=report(
            layout.figure("recon3d_protocols", "png"),
            caption="../report/figures/recon3d_protocols.rst",
            category="3D track",
            subcategory="Figures",
            labels={"figure": "recon3d_protocols"},
        ),
        data=layout.figure("recon3d_protocols", "csv"),
    log:
        layout.log("figures", "recon3d_protocols"),
    benchmark:
        layout.benchmark("figures", "recon3d_protocols")
    params:
        name="recon3d_protocols",
        confidence=lambda wc: config["recon3d"]["bootstrap"]["confidence"],


rule figure_recon3d_grid:
    input:
        table=layout.table("recon3d_items"),
        manifests=wiring.recon3d_manifests(),
    output:
        pdf=layout.figure("recon3d_grid", "pdf"),
        png=report(
            layout.figure("recon3d_grid", "png"),
            caption="../report/figures/recon3d_grid.rst",
            category="3D track",
            subcategory="Figures",
            labels={"figure": "recon3d_grid"},
        ),
        data=layout.figure("recon3d_grid", "csv"),
    log:
        layout.log("figures", "recon3d_grid"),
    benchmark:
        layout.benchmark("figures", "recon3d_grid")
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
        unpack(per_cell3d(wiring.appearance_inputs)),
    output:
        table=layout.appearance3d(CELL3D),
        sets=layout.appearance3d(CELL3D, sets=True),
    log:
        layout.log("appearance_3d", CELL3D),
    benchmark:
        layout.benchmark("appearance_3d", CELL3D)
    conda:
        "../envs/metrics.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    params:
        config=lambda wc: wiring.appearance_config(),
    script:
        "../scripts/appearance_3d.py"
