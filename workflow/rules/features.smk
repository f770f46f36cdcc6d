# Feature extractors: training of the mini-world stand-ins, features of real sets (once per data set) and of
# each generated cell.


rule train_extractor:
    input:
        manifest=lambda wc: wiring.extractor_train_manifest(wc.extractor),
    output:
        checkpoint=layout.extractor_checkpoint("{extractor}"),
        meta=layout.extractor_train_meta("{extractor}"),
    log:
        layout.log("train_extractor", "{extractor}"),
    benchmark:
        layout.benchmark("train_extractor", "{extractor}")
    conda:
        "../envs/metrics.yaml"
    threads: lambda wc: config["extractors"][wc.extractor]["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    params:
        config=lambda wc: wiring.extractor_config(wc.extractor),
    script:
        "../scripts/train_extractor.py"


rule init_extractor:
    output:
        checkpoint=layout.extractor_random_checkpoint("{extractor}"),
        config=layout.extractor_random_config("{extractor}"),
    log:
        layout.log("init_extractor", "{extractor}"),
    benchmark:
        layout.benchmark("init_extractor", "{extractor}")
    conda:
        "../envs/metrics.yaml"
    params:
        config=lambda wc: wiring.extractor_config(wc.extractor),
    script:
        "../scripts/init_extractor.py"


rule features_real:
    input:
        unpack(lambda wc: wiring.extractor_inputs(wc.extractor)),
        manifest=lambda wc: layout.manifest(wc.dataset),
    output:
        features=layout.real_features("{extractor}", "{dataset}"),
    log:
        layout.log("features_real", "{extractor}/{dataset}"),
    benchmark:
        layout.benchmark("features_real", "{extractor}/{dataset}")
    conda:
        "../envs/metrics.yaml"
    threads: wiring.feature_threads
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        config=lambda wc: wiring.with_image_policy(wiring.extractor_config(wc.extractor), wc.dataset),
        checkpoint=lambda wc, input: wiring.extractor_checkpoint(wc.extractor, input),
        spatial=lambda wc: wiring.spatial_features(wc.extractor),
    script:
        "../scripts/features_real.py"


# Everything a generated cell needs for scoring, in one job: the images are read once and each model is loaded
# once per cell (a separate job per extractor / embedder cost a process start and a torch/transformers/open_clip
# import each, more than the work itself at mini-world size).
rule cell_features:
    input:
        **wiring.cell_feature_inputs(),
        shards=per_cell(wiring.cell_shards),
    output:
        **wiring.cell_feature_outputs(CELL),
    log:
        layout.log("cell_features", CELL),
    benchmark:
        layout.benchmark("cell_features", CELL)
    conda:
        "../envs/metrics.yaml"
    threads: wiring.feature_threads
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        config=lambda wc: wiring.cell_feature_config(wc.model),
        checkpoints=lambda wc, input: wiring.cell_feature_checkpoints(input),
        set_name=lambda wc: Cell.from_wildcards(wc).path,
        spatial=wiring.spatial_extractors,
    script:
        "../scripts/cell_features.py"


# Text-image embedders (CLIP Score, PickScore): the mini-world's tiny CLIP is trained here; real ones are loaded.
rule train_embedder:
    input:
        unpack(lambda wc: wiring.embedder_train_manifests(wc.embedder)),
    output:
        checkpoint=layout.embedder_checkpoint("{embedder}"),
        meta=layout.embedder_train_meta("{embedder}"),
    log:
        layout.log("train_embedder", "{embedder}"),
    benchmark:
        layout.benchmark("train_embedder", "{embedder}")
    conda:
        "../envs/metrics.yaml"
    threads: lambda wc: config["embedders"][wc.embedder]["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    params:
        config=lambda wc: wiring.embedder_config(wc.embedder),
    script:
        "../scripts/train_embedder.py"


rule embed_real:
    input:
        unpack(lambda wc: wiring.embedder_inputs(wc.embedder)),
        manifest=lambda wc: layout.manifest(wc.dataset),
    output:
        embeddings=layout.real_embeddings("{embedder}", "{dataset}"),
    log:
        layout.log("embed_real", "{embedder}/{dataset}"),
    benchmark:
        layout.benchmark("embed_real", "{embedder}/{dataset}")
    conda:
        "../envs/metrics.yaml"
    threads: wiring.feature_threads
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        config=lambda wc: wiring.with_image_policy(wiring.embedder_config(wc.embedder), wc.dataset),
        checkpoint=lambda wc, input: wiring.embedder_checkpoint(wc.embedder, input),
    script:
        "../scripts/embed_real.py"
