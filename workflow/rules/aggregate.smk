# All per-cell metric tables -> one tidy table with provenance in its Parquet metadata.


rule aggregate_gen2d:
    input:
        tables=wiring.metric_tables(),
        reused_bounds=[config["scoring"]["mmhm"]["bounds"]] if config["scoring"]["mmhm"].get("bounds") else [],
    output:
        table=layout.table("gen2d_metrics"),
        mmhm_bounds=layout.table("mmhm_bounds", "json"),
    log:
        layout.log("aggregate", "gen2d_metrics"),
    benchmark:
        layout.benchmark("aggregate", "gen2d_metrics")
    conda:
        "../envs/metrics.yaml"
    params:
        config=wiring.aggregate_config(),
        config_hash=config_hash(config),
        per_class=False,
    script:
        "../scripts/aggregate_gen2d.py"


use rule aggregate_gen2d as aggregate_gen2d_per_class with:
    input:
        tables=wiring.metric_tables(per_class=True),
    output:
        table=layout.table("gen2d_per_class"),
    log:
        layout.log("aggregate", "gen2d_per_class"),
    benchmark:
        layout.benchmark("aggregate", "gen2d_per_class")
    params:
        config=wiring.aggregate_config(),
        config_hash=config_hash(config),
        per_class=True,


# The paper tables (Markdown, LaTeX, HTML) drawn from the tidy table; the HTML versions go into the report.
rule export_gen2d_tables:
    input:
        table=layout.table("gen2d_metrics"),
        pairwise=layout.table("gen2d_pairwise"),  # the best table marks significant choices
    output:
        sweep_md=layout.table("gen2d_sweep", "md"),
        sweep_tex=layout.table("gen2d_sweep", "tex"),
        sweep_html=report(
            layout.table("gen2d_sweep", "html"),
            caption="../report/tables/gen2d_sweep.rst",
            category="2D track",
            subcategory="Tables",
            labels={"table": "gen2d_sweep"},
        ),
        best_md=layout.table("gen2d_best", "md"),
        best_tex=layout.table("gen2d_best", "tex"),
        best_html=report(
            layout.table("gen2d_best", "html"),
            caption="../report/tables/gen2d_best.rst",
            category="2D track",
            subcategory="Tables",
            labels={"table": "gen2d_best"},
        ),
    log:
        layout.log("aggregate", "export_gen2d_tables"),
    benchmark:
        layout.benchmark("aggregate", "export_gen2d_tables")
    conda:
        "../envs/metrics.yaml"
    script:
        "../scripts/export_tables.py"
