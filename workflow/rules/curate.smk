# Data sets -> manifests (the same contract for the mini-world and the real data sets).


rule prepare_dataset:
    output:
        manifest="results/data/{dataset}/manifest.parquet",
    params:
        config=lambda wc: dataset_config(wc.dataset),
    log:
        f"{LOGS}/prepare_dataset/{{dataset}}.log",
    benchmark:
        f"{BENCH}/prepare_dataset/{{dataset}}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/prepare_dataset.py"
