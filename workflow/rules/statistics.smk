# Statistics across the sweep (docs/metrics.md, "Significance and selection stability"): paired comparisons with a
# multiple-comparison correction (2D cells, 3D per-item metrics) and how stable each criterion's selection of a
# setting is under item resampling. They read the features already extracted per cell; nothing is re-extracted.
# Their input functions and targets are in common.smk (the catalogue's lint: no functions beside rules).


rule pairwise_gen2d:
    input:
        unpack(stats_inputs()),
    output:
        table="results/tables/gen2d_pairwise.parquet",
        html=report(
            "results/tables/gen2d_pairwise.html",
            caption="../report/tables/gen2d_pairwise.rst",
            category="2D track",
            subcategory="Tables",
            labels={"table": "gen2d_pairwise"},
        ),
    log:
        f"{LOGS}/statistics/gen2d_pairwise.log",
    benchmark:
        f"{BENCH}/statistics/gen2d_pairwise.tsv"
    conda:
        "../envs/metrics.yaml"
    params:
        cells=cell_dicts(),
        datasets=STAT_DATASETS,
        config=select(config, "scoring", "statistics"),
        config_hash=config_hash(config),
    script:
        "../scripts/statistics.py"


rule selection_stability_gen2d:
    input:
        unpack(stats_inputs(text_image=True)),
    output:
        table="results/tables/gen2d_selection_stability.parquet",
        html=report(
            "results/tables/gen2d_selection_stability.html",
            caption="../report/tables/gen2d_selection_stability.rst",
            category="2D track",
            subcategory="Tables",
            labels={"table": "gen2d_selection_stability"},
        ),
    log:
        f"{LOGS}/statistics/gen2d_selection_stability.log",
    benchmark:
        f"{BENCH}/statistics/gen2d_selection_stability.tsv"
    conda:
        "../envs/metrics.yaml"
    params:
        cells=cell_dicts(),
        datasets=STAT_DATASETS,
        roles=list(TEXT_IMAGE),
        config=select(config, "scoring", "statistics"),
        config_hash=config_hash(config),
    script:
        "../scripts/statistics.py"


rule figure_selection_stability:
    input:
        table="results/tables/gen2d_selection_stability.parquet",
    output:
        pdf="results/figures/selection_stability.pdf",
        png=report(
            "results/figures/selection_stability.png",
            caption="../report/figures/selection_stability.rst",
            category="2D track",
            subcategory="Figures",
            labels={"figure": "selection_stability"},
        ),
        data="results/figures/selection_stability.csv",
    log:
        f"{LOGS}/figures/selection_stability.log",
    benchmark:
        f"{BENCH}/figures/selection_stability.tsv"
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/statistics.py"


rule pairwise_3d:
    input:
        per_item="results/tables/recon3d_items.parquet",
    output:
        table="results/tables/recon3d_pairwise.parquet",
        html=report(
            "results/tables/recon3d_pairwise.html",
            caption="../report/tables/recon3d_pairwise.rst",
            category="3D track",
            subcategory="Tables",
            labels={"table": "recon3d_pairwise"},
        ),
    log:
        f"{LOGS}/statistics/recon3d_pairwise.log",
    benchmark:
        f"{BENCH}/statistics/recon3d_pairwise.tsv"
    conda:
        "../envs/metrics.yaml"
    params:
        config=select(config, "seed", "recon3d"),
        config_hash=config_hash(config),
    script:
        "../scripts/statistics.py"


rule metric_validation:
    input:
        unpack(lambda wc: extractor_inputs(SCORE_EXTRACTOR)),
        manifest=lambda wc: manifest_path(VALIDATION_DATASETS[0]),
    output:
        table="results/tables/metric_validation.parquet",
        noise_floor="results/tables/metric_noise_floor.parquet",
        noise_floor_html=report(
            "results/tables/metric_noise_floor.html",
            caption="../report/tables/metric_noise_floor.rst",
            category="2D track",
            subcategory="Tables",
            labels={"table": "metric_noise_floor"},
        ),
        html=report(
            "results/tables/metric_validation.html",
            caption="../report/tables/metric_validation.rst",
            category="2D track",
            subcategory="Tables",
            labels={"table": "metric_validation"},
        ),
    log:
        f"{LOGS}/statistics/metric_validation.log",
    benchmark:
        f"{BENCH}/statistics/metric_validation.tsv"
    conda:
        "../envs/metrics.yaml"
    params:
        dataset=lambda wc: VALIDATION_DATASETS[0],
        config=select(config, "scoring", f"extractors.{SCORE_EXTRACTOR}"),
        checkpoint=lambda wc, input: extractor_checkpoint(SCORE_EXTRACTOR, input),
        config_hash=config_hash(config),
    script:
        "../scripts/statistics.py"


rule figure_metric_correlation:
    input:
        table="results/tables/gen2d_metrics.parquet",
    output:
        pdf="results/figures/metric_correlation.pdf",
        png=report(
            "results/figures/metric_correlation.png",
            caption="../report/figures/metric_correlation.rst",
            category="2D track",
            subcategory="Figures",
            labels={"figure": "metric_correlation"},
        ),
        data="results/figures/metric_correlation.csv",
    log:
        f"{LOGS}/figures/metric_correlation.log",
    benchmark:
        f"{BENCH}/figures/metric_correlation.tsv"
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/statistics.py"
