# The protocol-delta target (docs/protocol.md): the same cells under the anchor's setting and genbench's, one knob
# at a time, from the features and 3D reconstructions already computed (nothing is generated or reconstructed
# again). 2D: one job over every cell's scoring features; 3D: one job per data set re-scoring its items.


rule protocol_delta_2d:
    input:
        real=[layout.real_features(SCORE_EXTRACTOR, d) for d in wiring.stat_datasets],
        gen=[layout.gen_features(SCORE_EXTRACTOR, c) for c in CELLS],
    output:
        table=layout.protocol_delta_2d(),
    log:
        layout.log("protocol_delta", "2d"),
    benchmark:
        layout.benchmark("protocol_delta", "2d")
    conda:
        "../envs/metrics.yaml"
    resources:
        mem_mb=16000,
        runtime=720,
    params:
        config=select(config, "seed", "scoring", "extractors", "datasets", "protocol_delta"),
        datasets=wiring.stat_datasets,
        cells=[c.path for c in CELLS],
    script:
        "../scripts/protocol_delta.py"


rule protocol_delta_3d:
    input:
        manifest=layout.manifest3d("{dataset3d}"),
        recon=lambda wc: [layout.reconstructions(c) for c in wiring.recon3d_cells(wc.dataset3d)],
        scores=lambda wc: [layout.recon3d_metrics(c) for c in wiring.recon3d_cells(wc.dataset3d)],
    output:
        table=layout.protocol_delta_3d("{dataset3d}"),
    log:
        layout.log("protocol_delta", "3d/{dataset3d}"),
    benchmark:
        layout.benchmark("protocol_delta", "3d/{dataset3d}")
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
        parts=wiring.protocol_delta_parts(),
    output:
        table=layout.table("protocol_delta"),
        html=report(
            layout.table("protocol_delta", "html"),
            caption="../report/tables/protocol_delta.rst",
            category="Protocols",
            subcategory="Tables",
            labels={"table": "protocol_delta"},
        ),
    log:
        layout.log("protocol_delta", "table"),
    benchmark:
        layout.benchmark("protocol_delta", "table")
    conda:
        "../envs/metrics.yaml"
    params:
        config_hash=config_hash(config),
    script:
        "../scripts/protocol_delta.py"


rule figure_protocol_delta:
    input:
        table=layout.table("protocol_delta"),
    output:
        pdf=layout.figure("protocol_delta", "pdf"),
        png=report(
            layout.figure("protocol_delta", "png"),
            caption="../report/figures/protocol_delta.rst",
            category="Protocols",
            subcategory="Figures",
            labels={"figure": "protocol_delta"},
        ),
        data=layout.figure("protocol_delta", "csv"),
    log:
        layout.log("figures", "protocol_delta"),
    benchmark:
        layout.benchmark("figures", "protocol_delta")
    conda:
        "../envs/plots.yaml"
    params:
        confidence=config["scoring"]["bootstrap"]["confidence"],
    script:
        "../scripts/protocol_delta.py"
