# All per-cell metric tables -> one tidy table with provenance in its Parquet metadata.


rule aggregate_gen2d:
    input:
        tables=metric_tables(),
    output:
        table="results/tables/gen2d_metrics.parquet",
    params:
        config=select(config, "scoring", "extractors"),
        config_hash=config_hash(config),
    log:
        f"{LOGS}/aggregate/gen2d_metrics.log",
    benchmark:
        f"{BENCH}/aggregate/gen2d_metrics.tsv"
    conda:
        "../../envs/metrics.yaml"
    script:
        "../scripts/aggregate_gen2d.py"
