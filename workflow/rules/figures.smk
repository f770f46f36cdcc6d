# One rule per figure, each its own target (results/figures/{name}.pdf/.png): drawn from a table only (plus the
# sample grids for the qualitative figure), with the rows it drew beside it (.csv). The PNG goes into the
# Snakemake report with the caption in workflow/report/figures/{name}.rst. Each figure states the level of the
# CIs it draws (params.confidence, also read by the caption).


rule figure_fid_vs_cfg:
    input:
        table="results/tables/gen2d_metrics.parquet",
        pairwise="results/tables/gen2d_pairwise.parquet",  # significance marks (statistics.smk)
    output:
        pdf="results/figures/fid_vs_cfg.pdf",
        png=report("results/figures/fid_vs_cfg.png", caption="../report/figures/fid_vs_cfg.rst",
                   category="2D track", subcategory="Figures", labels={"figure": "fid_vs_cfg"}),
        data="results/figures/fid_vs_cfg.csv",
    params:
        name="fid_vs_cfg",
        confidence=config["scoring"]["bootstrap"]["confidence"],
    log:
        f"{LOGS}/figures/fid_vs_cfg.log",
    benchmark:
        f"{BENCH}/figures/fid_vs_cfg.tsv"
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/figure.py"


use rule figure_fid_vs_cfg as figure_is_vs_cfg with:
    output:
        pdf="results/figures/is_vs_cfg.pdf",
        png=report("results/figures/is_vs_cfg.png", caption="../report/figures/is_vs_cfg.rst",
                   category="2D track", subcategory="Figures", labels={"figure": "is_vs_cfg"}),
        data="results/figures/is_vs_cfg.csv",
    params:
        name="is_vs_cfg",
        confidence=config["scoring"]["bootstrap"]["confidence"],
    log:
        f"{LOGS}/figures/is_vs_cfg.log",
    benchmark:
        f"{BENCH}/figures/is_vs_cfg.tsv"


use rule figure_fid_vs_cfg as figure_kid_vs_cfg with:
    input:
        table="results/tables/gen2d_metrics.parquet",
    output:
        pdf="results/figures/kid_vs_cfg.pdf",
        png=report("results/figures/kid_vs_cfg.png", caption="../report/figures/kid_vs_cfg.rst",
                   category="2D track", subcategory="Figures", labels={"figure": "kid_vs_cfg"}),
        data="results/figures/kid_vs_cfg.csv",
    params:
        name="kid_vs_cfg",
        confidence=config["scoring"]["bootstrap"]["confidence"],
    log:
        f"{LOGS}/figures/kid_vs_cfg.log",
    benchmark:
        f"{BENCH}/figures/kid_vs_cfg.tsv"


use rule figure_fid_vs_cfg as figure_step_scaling with:
    output:
        pdf="results/figures/step_scaling.pdf",
        png=report("results/figures/step_scaling.png", caption="../report/figures/step_scaling.rst",
                   category="2D track", subcategory="Figures", labels={"figure": "step_scaling"}),
        data="results/figures/step_scaling.csv",
    params:
        name="step_scaling",
        confidence=config["scoring"]["bootstrap"]["confidence"],
    log:
        f"{LOGS}/figures/step_scaling.log",
    benchmark:
        f"{BENCH}/figures/step_scaling.tsv"


use rule figure_fid_vs_cfg as figure_dataset_comparison with:
    input:
        table="results/tables/gen2d_metrics.parquet",
    output:
        pdf="results/figures/dataset_comparison.pdf",
        png=report("results/figures/dataset_comparison.png", caption="../report/figures/dataset_comparison.rst",
                   category="2D track", subcategory="Figures", labels={"figure": "dataset_comparison"}),
        data="results/figures/dataset_comparison.csv",
    params:
        name="dataset_comparison",
        confidence=config["scoring"]["bootstrap"]["confidence"],
    log:
        f"{LOGS}/figures/dataset_comparison.log",
    benchmark:
        f"{BENCH}/figures/dataset_comparison.tsv"


rule figure_sample_grids:
    input:
        table="results/tables/gen2d_metrics.parquet",
        grids=sample_grids(),
    output:
        pdf="results/figures/sample_grids.pdf",
        png=report("results/figures/sample_grids.png", caption="../report/figures/sample_grids.rst",
                   category="2D track", subcategory="Figures", labels={"figure": "sample_grids"}),
        data="results/figures/sample_grids.csv",
    params:
        name="sample_grids",
        confidence=config["scoring"]["bootstrap"]["confidence"],
        cells=[c.path for c in CELLS],
    log:
        f"{LOGS}/figures/sample_grids.log",
    benchmark:
        f"{BENCH}/figures/sample_grids.tsv"
    conda:
        "../envs/plots.yaml"
    script:
        "../scripts/figure.py"


use rule figure_fid_vs_cfg as figure_per_class_fid with:
    input:
        table="results/tables/gen2d_per_class.parquet",
    output:
        pdf="results/figures/per_class_fid.pdf",
        png=report("results/figures/per_class_fid.png", caption="../report/figures/per_class_fid.rst",
                   category="2D track", subcategory="Figures", labels={"figure": "per_class_fid"}),
        data="results/figures/per_class_fid.csv",
    params:
        name="per_class_fid",
        confidence=config["scoring"]["bootstrap"]["confidence"],
    log:
        f"{LOGS}/figures/per_class_fid.log",
    benchmark:
        f"{BENCH}/figures/per_class_fid.tsv"


use rule figure_fid_vs_cfg as figure_clip_vs_cfg with:
    input:
        table="results/tables/gen2d_metrics.parquet",
    output:
        pdf="results/figures/clip_vs_cfg.pdf",
        png=report("results/figures/clip_vs_cfg.png", caption="../report/figures/clip_vs_cfg.rst",
                   category="2D track", subcategory="Figures", labels={"figure": "clip_vs_cfg"}),
        data="results/figures/clip_vs_cfg.csv",
    params:
        name="clip_vs_cfg",
        confidence=config["scoring"]["bootstrap"]["confidence"],
    log:
        f"{LOGS}/figures/clip_vs_cfg.log",
    benchmark:
        f"{BENCH}/figures/clip_vs_cfg.tsv"


use rule figure_fid_vs_cfg as figure_pick_vs_cfg with:
    input:
        table="results/tables/gen2d_metrics.parquet",
    output:
        pdf="results/figures/pick_vs_cfg.pdf",
        png=report("results/figures/pick_vs_cfg.png", caption="../report/figures/pick_vs_cfg.rst",
                   category="2D track", subcategory="Figures", labels={"figure": "pick_vs_cfg"}),
        data="results/figures/pick_vs_cfg.csv",
    params:
        name="pick_vs_cfg",
        confidence=config["scoring"]["bootstrap"]["confidence"],
    log:
        f"{LOGS}/figures/pick_vs_cfg.log",
    benchmark:
        f"{BENCH}/figures/pick_vs_cfg.tsv"


use rule figure_fid_vs_cfg as figure_mmhm_heatmap with:
    input:
        table="results/tables/gen2d_metrics.parquet",
    output:
        pdf="results/figures/mmhm_heatmap.pdf",
        png=report("results/figures/mmhm_heatmap.png", caption="../report/figures/mmhm_heatmap.rst",
                   category="2D track", subcategory="Figures", labels={"figure": "mmhm_heatmap"}),
        data="results/figures/mmhm_heatmap.csv",
    params:
        name="mmhm_heatmap",
        confidence=config["scoring"]["bootstrap"]["confidence"],
    log:
        f"{LOGS}/figures/mmhm_heatmap.log",
    benchmark:
        f"{BENCH}/figures/mmhm_heatmap.tsv"


use rule figure_fid_vs_cfg as figure_scaled_vs_raw with:
    input:
        table="results/tables/gen2d_metrics.parquet",
    output:
        pdf="results/figures/scaled_vs_raw.pdf",
        png=report("results/figures/scaled_vs_raw.png", caption="../report/figures/scaled_vs_raw.rst",
                   category="2D track", subcategory="Figures", labels={"figure": "scaled_vs_raw"}),
        data="results/figures/scaled_vs_raw.csv",
    params:
        name="scaled_vs_raw",
        confidence=config["scoring"]["bootstrap"]["confidence"],
    log:
        f"{LOGS}/figures/scaled_vs_raw.log",
    benchmark:
        f"{BENCH}/figures/scaled_vs_raw.tsv"
