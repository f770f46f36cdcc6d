# Statistics across the sweep (docs/metrics.md, "Significance and selection stability"): paired comparisons with a
# multiple-comparison correction (2D cells, 3D per-item metrics) and how stable each criterion's selection of a
# setting is under item resampling. They read the features already extracted per cell; nothing is re-extracted.
# Their inputs and targets come from genbench.wiring (Wiring.stats_inputs, statistics_targets).


rule pairwise_gen2d:
    input:
        **wiring.stats_inputs(),
    output:
        table=layout.table("gen2d_pairwise"),
        html=report(
            layout.table("gen2d_pairwise", "html"),
            caption="../report/tables/gen2d_pairwise.rst",
            category="2D track",
            subcategory="Tables",
            labels={"table": "gen2d_pairwise"},
        ),
    log:
        layout.log("statistics", "gen2d_pairwise"),
    benchmark:
        layout.benchmark("statistics", "gen2d_pairwise")
    conda:
        "../envs/metrics.yaml"
    params:
        cells=wiring.cell_dicts(),
        datasets=wiring.stat_datasets,
        config=select(config, "scoring", "statistics"),
        config_hash=config_hash(config),
    script:
        "../scripts/statistics.py"


rule selection_stability_gen2d:
    input:
        **wiring.stats_inputs(text_image=True),
    output:
        table=layout.table("gen2d_selection_stability"),
        html=report(
            layout.table("gen2d_selection_stability", "html"),
            caption="../report/tables/gen2d_selection_stability.rst",
            category="2D track",
            subcategory="Tables",
            labels={"table": "gen2d_selection_stability"},
        ),
    log:
        layout.log("statistics", "gen2d_selection_stability"),
    benchmark:
        layout.benchmark("statistics", "gen2d_selection_stability")
    conda:
        "../envs/metrics.yaml"
    params:
        cells=wiring.cell_dicts(),
        datasets=wiring.stat_datasets,
        roles=list(wiring.text_image),
        config=select(config, "scoring", "statistics"),
        config_hash=config_hash(config),
    script:
        "../scripts/statistics.py"


rule figure_selection_stability:
    input:
        table=layout.table("gen2d_selection_stability"),
    output:
        pdf=layout.figure("selection_stability", "pdf"),
        png=report(
            layout.figure("selection_stability", "png"),
            caption="../report/figures/selection_stability.rst",
            category="2D track",
            subcategory="Figures",
            labels={"figure": "selection_stability"},
        ),
        data=layout.figure("selection_stability", "csv"),
    log:
        layout.log("figures", "selection_stability"),
    benchmark:
        layout.benchmark("figures", "selection_stability")
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/statistics.py"


rule pairwise_3d:
    input:
        per_item=layout.table("recon3d_items"),
    output:
        table=layout.table("recon3d_pairwise"),
        html=report(
            layout.table("recon3d_pairwise", "html"),
            caption="../report/tables/recon3d_pairwise.rst",
            category="3D track",
            subcategory="Tables",
            labels={"table": "recon3d_pairwise"},
        ),
    log:
        layout.log("statistics", "recon3d_pairwise"),
    benchmark:
        layout.benchmark("statistics", "recon3d_pairwise")
    conda:
        "../envs/metrics.yaml"
    params:
        config=select(config, "seed", "recon3d"),
        config_hash=config_hash(config),
    script:
        "../scripts/statistics.py"


rule metric_validation:
    input:
        unpack(lambda wc: wiring.extractor_inputs(SCORE_EXTRACTOR)),
        unpack(lambda wc: wiring.validation_embedder_inputs()),
        manifest=lambda wc: layout.manifest(wiring.validation_datasets[0]),
    output:
        table=layout.table("metric_validation"),
        noise_floor=layout.table("metric_noise_floor"),
        noise_floor_html=report(
            layout.table("metric_noise_floor", "html"),
            caption="../report/tables/metric_noise_floor.rst",
            category="2D track",
            subcategory="Tables",
            labels={"table": "metric_noise_floor"},
        ),
        html=report(
            layout.table("metric_validation", "html"),
            caption="../report/tables/metric_validation.rst",
            category="2D track",
            subcategory="Tables",
            labels={"table": "metric_validation"},
        ),
    log:
        layout.log("statistics", "metric_validation"),
    benchmark:
        layout.benchmark("statistics", "metric_validation")
    conda:
        "../envs/metrics.yaml"
    params:
        dataset=lambda wc: wiring.validation_datasets[0],
        config=wiring.validation_config(),
        checkpoint=lambda wc, input: wiring.extractor_checkpoint(SCORE_EXTRACTOR, input),
        embedders=lambda wc, input: wiring.validation_embedders(input),
        config_hash=config_hash(config),
    script:
        "../scripts/statistics.py"


rule figure_metric_correlation:
    input:
        table=layout.table("gen2d_metrics"),
    output:
        pdf=layout.figure("metric_correlation", "pdf"),
        png=report(
            layout.figure("metric_correlation", "png"),
            caption="../report/figures/metric_correlation.rst",
            category="2D track",
            subcategory="Figures",
            labels={"figure": "metric_correlation"},
        ),
        data=layout.figure("metric_correlation", "csv"),
    log:
        layout.log("figures", "metric_correlation"),
    benchmark:
        layout.benchmark("figures", "metric_correlation")
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/statistics.py"
