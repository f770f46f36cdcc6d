# Metrics of one generated cell against the real features of its data set (the whole cell, and per class).


rule score_cell:
    input:
        unpack(per_cell(wiring.text_image_inputs)),
        unpack(per_cell(wiring.dinov2_inputs)),
        real=layout.real_features(SCORE_EXTRACTOR, "{dataset}"),
        gen=layout.gen_features(SCORE_EXTRACTOR, CELL),
        manifest=lambda wc: layout.manifest(wc.dataset),
    output:
        table=layout.metric_table(CELL),
        per_class=layout.metric_table(CELL, per_class=True),
    log:
        layout.log("score_cell", CELL),
    benchmark:
        layout.benchmark("score_cell", CELL)
    conda:
        "../envs/metrics.yaml"
    params:
        config=lambda wc: wiring.score_config(wc.model, wc.dataset),
        cell=per_cell(Cell.as_dict),
    script:
        "../scripts/score_cell.py"
