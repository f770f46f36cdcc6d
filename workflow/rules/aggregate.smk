# All per-cell metric tables -> one tidy table with provenance in its Parquet metadata.


rule aggregate_gen2d:
    input:
        tables=metric_tables(),
        reused_bounds=[config["scoring"]["mmhm"]["bounds"]] if config["scoring"]["mmhm"].get("bounds") else [],
    output:
        table="results/tables/gen2d_metrics.parquet",
        mmhm_bounds="results/tables/mmhm_bounds.json",
    log:
        f"{LOGS}/aggregate/gen2d_metrics.log",
    benchmark:
        f"{BENCH}/aggregate/gen2d_metrics.tsv"
    conda:
        "../envs/metrics.yaml"
    params:
        config=select(config, "scoring", "extractors", "embedders", "sweep", *class_name_paths()),
        config_hash=config_hash(config),
        per_class=False,
    script:
        "../scripts/aggregate_gen2d.py"


use rule aggregate_gen2d as aggregate_gen2d_per_class with:
    input:
        tables=metric_tables(per_class=True),
    output:
        table="results/tables/gen2d_per_class.parquet",
    log:
        f"{LOGS}/aggregate/gen2d_per_class.log",
    benchmark:
        f"{BENCH}/aggregate/gen2d_per_class.tsv"
    params:
        config=select(config, "scoring", "extractors", "embedders", "sweep", *class_name_paths()),
        config_hash=config_hash(config),
        per_class=True,


# The paper tables (Markdown, LaTeX, HTML) drawn from the tidy table; the HTML versions go into the report.
rule export_gen2d_tables:
    input:
        table="results/tables/gen2d_metrics.parquet",
        pairwise="results/tables/gen2d_pairwise.parquet",  # the best table marks significant choices
    output:
        sweep_md="results/tables/gen2d_sweep.md",
        sweep_tex="results/tables/gen2d_sweep.tex",
        sweep_html=report(
            "results/tables/gen2d_sweep.html",
            caption="../report/tables/gen2d_sweep.rst",
            category="2D track",
            subcategory="Tables",
            labels={"table": "gen2d_sweep"},
        ),
        best_md="results/tables/gen2d_best.md",
        best_tex="results/tables/gen2d_best.tex",
        best_html=report(
            "results/tables/gen2d_best.html",
            caption="../report/tables/gen2d_best.rst",
            category="2D track",
            subcategory="Tables",
            labels={"table": "gen2d_best"},
        ),
    log:
        f"{LOGS}/aggregate/export_gen2d_tables.log",
    benchmark:
        f"{BENCH}/aggregate/export_gen2d_tables.tsv"
    conda:
        "../envs/metrics.yaml"
    script:
        "../scripts/export_tables.py"
