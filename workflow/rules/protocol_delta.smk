# The protocol-delta target (docs/protocol.md): the same cells under the anchor's setting and genbench's, one knob
# at a time, from the features and 3D reconstructions already computed (nothing is generated or reconstructed
# again). 2D: one job over every cell's scoring features; 3D: one job per data set re-scoring its items.


rule protocol_delta_2d:
    input:
        real=[f"results/features/{SCORE_EXTRACTOR}/real/{d}.npz" for d in sorted({c.dataset for c in CELLS})],
        gen=[f"results/features/{SCORE_EXTRACTOR}/gen/{c.path}.npz" for c in CELLS],
    output:
        table="results/protocol_delta/2d.parquet",
    log:
        f"{LOGS}/protocol_delta/2d.log",
    benchmark:
        f"{BENCH}/protocol_delta/2d.tsv"
    conda:
        "../envs/metrics.yaml"
    resources:
        mem_mb=16000,
        runtime=720,
    params:
        config=select(config, "seed", "scoring", "extractors", "datasets", "protocol_delta"),
        datasets=sorted({c.dataset for c in CELLS}),
        cells=[c.path for c in CELLS],
    script:
        "../scripts/protocol_delta.py"


rule protocol_delta_3d:
    input:
        manifest="results/data3d/{dataset3d}/manifest.parquet",
        recon=lambda wc: [
            f"results/recon3d/{wc.dataset3d}/{m}/reconstructions.parquet" for m in config["recon3d"]["models"]
        ],
        scores=lambda wc: [f"results/metrics/recon3d/{wc.dataset3d}/{m}.parquet" for m in config["recon3d"]["models"]],
    output:
        table="results/protocol_delta/3d/{dataset3d}.parquet",
    log:
        f"{LOGS}/protocol_delta/3d/{{dataset3d}}.log",
    benchmark:
        f"{BENCH}/protocol_delta/3d/{{dataset3d}}.tsv"
    conda:
        "../envs/mesh.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=720,  # five re-scorings of every item of every reconstructor (score_3d does two protocols in 120)
    params:
        config=select(config, "seed", "recon3d"),
    script:
        "../scripts/protocol_delta.py"


rule protocol_delta:
    input:
        parts=protocol_delta_parts(),
    output:
        table="results/tables/protocol_delta.parquet",
        html=report(
            "results/tables/protocol_delta.html",
            caption="../report/tables/protocol_delta.rst",
            category="Protocols",
            subcategory="Tables",
            labels={"table": "protocol_delta"},
        ),
    log:
        f"{LOGS}/protocol_delta/table.log",
    benchmark:
        f"{BENCH}/protocol_delta/table.tsv"
    conda:
        "../envs/metrics.yaml"
    params:
        config_hash=config_hash(config),
    script:
        "../scripts/protocol_delta.py"


rule figure_protocol_delta:
    input:
        table="results/tables/protocol_delta.parquet",
    output:
        pdf="results/figures/protocol_delta.pdf",
        png=report(
            "results/figures/protocol_delta.png",
            caption="../report/figures/protocol_delta.rst",
            category="Protocols",
            subcategory="Figures",
            labels={"figure": "protocol_delta"},
        ),
        data="results/figures/protocol_delta.csv",
    log:
        f"{LOGS}/figures/protocol_delta.log",
    benchmark:
        f"{BENCH}/figures/protocol_delta.tsv"
    conda:
        "../envs/plots.yaml"
    params:
        confidence=config["scoring"]["bootstrap"]["confidence"],
    script:
        "../scripts/protocol_delta.py"
