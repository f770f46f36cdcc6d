# The protocol-delta target (docs/protocol.md): the same cells under the anchor's setting and genbench's, one knob
# at a time, from the features and 3D reconstructions already computed (nothing is generated or reconstructed
# again). 2D: one job over every cell's scoring features, plus, for the knobs protocol_delta.knobs requests and
# that apply (genbench.protocol2d), the features or prompt embeddings under the anchor's setting of the knob;
# 3D: one job per data set re-scoring its items.


rule protocol_delta_2d:
    input:
        wiring.protocol_delta_2d_inputs(),
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
        files=wiring.protocol_delta_2d_files(),
        knobs=wiring.protocol_delta_2d_knobs(),
    script:
        "../scripts/protocol_delta.py"


# knobs resize_mode and real_preparation: a real set's scoring features under the anchor's resize or preparation
rule protocol_features_real:
    input:
        unpack(lambda wc: wiring.extractor_inputs(wc.extractor)),
        manifest=lambda wc: layout.manifest(wc.dataset),
    output:
        features=layout.protocol_real_features("{knob}", "{extractor}", "{dataset}"),
    log:
        layout.log("protocol_features_real", "{knob}/{extractor}/{dataset}"),
    benchmark:
        layout.benchmark("protocol_features_real", "{knob}/{extractor}/{dataset}")
    conda:
        "../envs/metrics.yaml"
    threads: wiring.feature_threads
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        config=lambda wc: wiring.protocol_features_config(wc.knob, wc.extractor, wc.dataset),
        checkpoint=lambda wc, input: wiring.extractor_checkpoint(wc.extractor, input),
        spatial=False,  # the knobs compare FID only
    script:
        "../scripts/features_real.py"


# knob resize_mode: a generated cell's scoring features under the anchor's resize
rule protocol_features_gen:
    input:
        unpack(lambda wc: wiring.extractor_inputs(wc.extractor)),
        shards=per_cell(wiring.cell_shards),
    output:
        features=layout.protocol_gen_features("{knob}", "{extractor}", CELL),
    log:
        layout.log("protocol_features_gen", f"{{knob}}/{{extractor}}/{CELL}"),
    benchmark:
        layout.benchmark("protocol_features_gen", f"{{knob}}/{{extractor}}/{CELL}")
    conda:
        "../envs/metrics.yaml"
    threads: wiring.feature_threads
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        config=lambda wc: wiring.protocol_features_config(wc.knob, wc.extractor, model=wc.model),
        checkpoint=lambda wc, input: wiring.extractor_checkpoint(wc.extractor, input),
        set_name=lambda wc: Cell.from_wildcards(wc).path,
    script:
        "../scripts/protocol_delta.py"


# knob prompt_names: a real set's prompts embedded under the anchor's class-name table (text only)
rule protocol_embed_prompts:
    input:
        unpack(lambda wc: wiring.embedder_inputs(wc.embedder)),
        manifest=lambda wc: layout.manifest(wc.dataset),
    output:
        embeddings=layout.protocol_prompt_embeddings("{embedder}", "{dataset}"),
    log:
        layout.log("protocol_embed_prompts", "{embedder}/{dataset}"),
    benchmark:
        layout.benchmark("protocol_embed_prompts", "{embedder}/{dataset}")
    conda:
        "../envs/metrics.yaml"
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=30,
    params:
        config=lambda wc: wiring.protocol_embed_config(wc.embedder, wc.dataset),
        checkpoint=lambda wc, input: wiring.embedder_checkpoint(wc.embedder, input),
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
