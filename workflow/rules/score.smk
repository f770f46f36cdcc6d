# Metrics of one generated cell against the real features of its data set (the whole cell, and per class).


rule score_cell:
    input:
        unpack(text_image_inputs),
        unpack(dinov2_inputs),
        real=f"results/features/{SCORE_EXTRACTOR}/real/{{dataset}}.npz",
        gen=f"results/features/{SCORE_EXTRACTOR}/gen/{{model}}/{{dataset}}/steps{{steps}}_cfg{{cfg}}/seed{{seed}}.npz",
        manifest=lambda wc: manifest_path(wc.dataset),
    output:
        table="results/metrics/gen2d/{model}/{dataset}/steps{steps}_cfg{cfg}/seed{seed}.parquet",
        per_class="results/metrics/gen2d_per_class/{model}/{dataset}/steps{steps}_cfg{cfg}/seed{seed}.parquet",
    log:
        f"{LOGS}/score_cell/{{model}}/{{dataset}}/steps{{steps}}_cfg{{cfg}}/seed{{seed}}.log",
    benchmark:
        f"{BENCH}/score_cell/{{model}}/{{dataset}}/steps{{steps}}_cfg{{cfg}}/seed{{seed}}.tsv"
    conda:
        "../envs/metrics.yaml"
    params:
        config=lambda wc: score_config(wc.model),
        cell=cell_wildcards,
    script:
        "../scripts/score_cell.py"
