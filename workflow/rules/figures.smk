# One rule per figure (each its own target): drawn from a table only, with the rows it drew beside it.


rule figure_fid_vs_cfg:
    input:
        table="results/tables/gen2d_metrics.parquet",
    output:
        pdf="results/figures/fid_vs_cfg.pdf",
        png="results/figures/fid_vs_cfg.png",
        data="results/figures/fid_vs_cfg.csv",
    params:
        name="fid_vs_cfg",
    log:
        f"{LOGS}/figures/fid_vs_cfg.log",
    benchmark:
        f"{BENCH}/figures/fid_vs_cfg.tsv"
    conda:
        "../../envs/plots.yaml"
    script:
        "../scripts/figure.py"
