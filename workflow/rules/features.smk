# Feature extractors: training of the mini-world stand-ins, features of real sets (once per data set) and of
# each generated cell.


rule train_extractor:
    input:
        manifest=train_manifest_extractor,
    output:
        checkpoint="results/extractors/{extractor}/model.safetensors",
        meta="results/extractors/{extractor}/train.json",
    log:
        f"{LOGS}/train_extractor/{{extractor}}.log",
    benchmark:
        f"{BENCH}/train_extractor/{{extractor}}.tsv"
    conda:
        "../envs/metrics.yaml"
    threads: lambda wc: config["extractors"][wc.extractor]["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    params:
        config=lambda wc: extractor_config(wc.extractor),
    script:
        "../scripts/train_extractor.py"


rule init_extractor:
    output:
        checkpoint="results/extractors/{extractor}/random/model.safetensors",
        config="results/extractors/{extractor}/random/config.json",
    log:
        f"{LOGS}/init_extractor/{{extractor}}.log",
    benchmark:
        f"{BENCH}/init_extractor/{{extractor}}.tsv"
    conda:
        "../envs/metrics.yaml"
    params:
        config=lambda wc: extractor_config(wc.extractor),
    script:
        "../scripts/init_extractor.py"


rule features_real:
    input:
        unpack(lambda wc: extractor_inputs(wc.extractor)),
        manifest=lambda wc: manifest_path(wc.dataset),
    output:
        features="results/features/{extractor}/real/{dataset}.npz",
    log:
        f"{LOGS}/features_real/{{extractor}}/{{dataset}}.log",
    benchmark:
        f"{BENCH}/features_real/{{extractor}}/{{dataset}}.tsv"
    conda:
        "../envs/metrics.yaml"
    threads: FEATURE_THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        config=lambda wc: with_image_policy(extractor_config(wc.extractor), wc.dataset),
        checkpoint=lambda wc, input: extractor_checkpoint(wc.extractor, input),
    script:
        "../scripts/features_real.py"


# Everything a generated cell needs for scoring, in one job: the images are read once and each model is loaded
# once per cell (a separate job per extractor / embedder cost a process start and a torch/transformers/open_clip
# import each, more than the work itself at mini-world size).
rule cell_features:
    input:
        unpack(cell_feature_inputs),
        shards=cell_shards,
    output:
        **cell_feature_outputs(),
    log:
        f"{LOGS}/cell_features/{{model}}/{{dataset}}/steps{{steps}}_cfg{{cfg}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/cell_features/{{model}}/{{dataset}}/steps{{steps}}_cfg{{cfg}}/seed{{seed}}.tsv"
    conda:
        "../envs/metrics.yaml"
    threads: FEATURE_THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        config=cell_feature_config,
        checkpoints=cell_feature_checkpoints,
        set_name=lambda wc: f"{wc.model}/{wc.dataset}/steps{wc.steps}_cfg{wc.cfg}/seed{wc.seed}",
    script:
        "../scripts/cell_features.py"


# Text-image embedders (CLIP Score, PickScore): the mini-world's tiny CLIP is trained here; real ones are loaded.
rule train_embedder:
    input:
        manifest=lambda wc: manifest_path(config["embedders"][wc.embedder]["train"]["dataset"]),
        extra=lambda wc: [manifest_path(d) for d in config["embedders"][wc.embedder]["train"].get("extra", [])],
    output:
        checkpoint="results/embedders/{embedder}/model.safetensors",
        meta="results/embedders/{embedder}/train.json",
    log:
        f"{LOGS}/train_embedder/{{embedder}}.log",
    benchmark:
        f"{BENCH}/train_embedder/{{embedder}}.tsv"
    conda:
        "../envs/metrics.yaml"
    threads: lambda wc: config["embedders"][wc.embedder]["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    params:
        config=lambda wc: embedder_config(wc.embedder),
    script:
        "../scripts/train_embedder.py"


rule embed_real:
    input:
        unpack(lambda wc: embedder_inputs(wc.embedder)),
        manifest=lambda wc: manifest_path(wc.dataset),
    output:
        embeddings="results/embeddings/{embedder}/real/{dataset}.npz",
    log:
        f"{LOGS}/embed_real/{{embedder}}/{{dataset}}.log",
    benchmark:
        f"{BENCH}/embed_real/{{embedder}}/{{dataset}}.tsv"
    conda:
        "../envs/metrics.yaml"
    threads: FEATURE_THREADS
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        config=lambda wc: with_image_policy(embedder_config(wc.embedder), wc.dataset),
        checkpoint=lambda wc, input: embedder_checkpoint(wc.embedder, input),
    script:
        "../scripts/embed_real.py"
