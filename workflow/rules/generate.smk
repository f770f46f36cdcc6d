# Generators: training of the mini-world models, sharded generation per sweep cell, sample grids.


rule train_generator:
    input:
        manifest=lambda wc: wiring.model_train_manifest(wc.model),
    output:
        checkpoint=layout.model_checkpoint("{model}"),
        meta=layout.model_train_meta("{model}"),
    log:
        layout.log("train_generator", "{model}"),
    benchmark:
        layout.benchmark("train_generator", "{model}")
    conda:
        "../envs/gen2d.yaml"
    threads: lambda wc: config["models"][wc.model]["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=120,
    params:
        config=lambda wc: wiring.model_config(wc.model),
    script:
        "../scripts/train_generator.py"


rule convert_weights:
    # official weights in a foreign format (the model's `convert:` entry, e.g. MeanFlow's Flax checkpoints);
    # the source is read at run time, like other official weights, so a dry run lists the job without the files
    output:
        checkpoint=layout.converted_checkpoint("{model}"),
        meta=layout.converted_meta("{model}"),
    log:
        layout.log("convert_weights", "{model}"),
    benchmark:
        layout.benchmark("convert_weights", "{model}")
    conda:
        "../envs/flax.yaml"
    threads: 1
    resources:
        mem_mb=16000,
        runtime=30,
    params:
        config=lambda wc: wiring.model_config(wc.model),
    script:
        "../scripts/convert_weights.py"


rule generate:
    input:
        unpack(per_cell(wiring.generator_inputs)),
    output:
        shard=layout.shard(CELL, "{shard}"),
    log:
        layout.log("generate", layout.shard_name(CELL, "{shard}")),
    benchmark:
        layout.benchmark("generate", layout.shard_name(CELL, "{shard}"))
    conda:
        lambda wc: wiring.plugin_env("models", wc.model)
    threads: config["generation"]["threads"]
    resources:
        gpu=lambda wc: wiring.plugin("models", wc.model).gpus,
        mem_mb=8000,
        runtime=240,
    params:
        config=lambda wc: wiring.model_config(wc.model),
        cell=per_cell(Cell.as_dict),
        checkpoint=lambda wc, input: wiring.generator_checkpoint(wc.model, input),
        n_shards=lambda wc: model_shards(config, wc.model),
        batch_size=lambda wc: model_batch_size(config, wc.model),
    script:
        "../scripts/generate.py"


rule sample_grid:
    input:
        shards=per_cell(wiring.cell_shards),
    output:
        grid=layout.grid(CELL),
    log:
        layout.log("sample_grid", CELL),
    benchmark:
        layout.benchmark("sample_grid", CELL)
    conda:
        "../envs/gen2d.yaml"
    params:
        n=config["generation"]["grid_size"],
    script:
        "../scripts/sample_grid.py"
