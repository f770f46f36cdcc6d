# Generators: training of the mini-world models, sharded generation per sweep cell, sample grids.


rule train_generator:
    input:
        manifest=train_manifest_model,
    output:
        checkpoint="results/models/{model}/model.safetensors",
        meta="results/models/{model}/train.json",
    log:
        f"{LOGS}/train_generator/{{model}}.log",
    benchmark:
        f"{BENCH}/train_generator/{{model}}.tsv"
    conda:
        "../envs/gen2d.yaml"
    threads: lambda wc: config["models"][wc.model]["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=120,
    params:
        config=lambda wc: model_config(wc.model),
    script:
        "../scripts/train_generator.py"


rule convert_weights:
    # official weights in a foreign format (the model's `convert:` entry, e.g. MeanFlow's Flax checkpoints);
    # the source is read at run time, like other official weights, so a dry run lists the job without the files
    output:
        checkpoint="results/models/{model}/converted.safetensors",
        meta="results/models/{model}/converted.json",
    log:
        f"{LOGS}/convert_weights/{{model}}.log",
    benchmark:
        f"{BENCH}/convert_weights/{{model}}.tsv"
    conda:
        "../envs/flax.yaml"
    threads: 1
    resources:
        mem_mb=16000,
        runtime=30,
    params:
        config=lambda wc: model_config(wc.model),
    script:
        "../scripts/convert_weights.py"


rule generate:
    input:
        unpack(generator_inputs),
    output:
        shard="results/gen2d/{model}/{dataset}/steps{steps}_cfg{cfg}/seed{seed}/shard-{shard}.npz",
    log:
        f"{LOGS}/generate/{{model}}/{{dataset}}/steps{{steps}}_cfg{{cfg}}/seed{{seed}}/shard-{{shard}}.log",
    benchmark:
        f"{BENCH}/generate/{{model}}/{{dataset}}/steps{{steps}}_cfg{{cfg}}/seed{{seed}}/shard-{{shard}}.tsv"
    conda:
        lambda wc: plugin_env("models", wc.model)
    threads: 2
    resources:
        gpu=lambda wc: plugin("models", wc.model).gpus,
        mem_mb=8000,
        runtime=240,
    params:
        config=lambda wc: model_config(wc.model),
        cell=cell_wildcards,
        checkpoint=generator_checkpoint,
        n_shards=lambda wc: model_shards(config, wc.model),
        batch_size=lambda wc: model_batch_size(config, wc.model),
    script:
        "../scripts/generate.py"


rule sample_grid:
    input:
        shards=cell_shards,
    output:
        grid="results/gen2d/{model}/{dataset}/steps{steps}_cfg{cfg}/seed{seed}/grid.png",
    log:
        f"{LOGS}/sample_grid/{{model}}/{{dataset}}/steps{{steps}}_cfg{{cfg}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/sample_grid/{{model}}/{{dataset}}/steps{{steps}}_cfg{{cfg}}/seed{{seed}}.tsv"
    conda:
        "../envs/gen2d.yaml"
    params:
        n=config["generation"]["grid_size"],
    script:
        "../scripts/sample_grid.py"
