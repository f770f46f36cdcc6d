# Data sets -> manifests (the same contract for the mini-world and the real data sets), and the reLAIONet
# curation (docs/curation.md): LAION-style source -> lemma matching -> text filter -> checks -> review -> manifest.


rule prepare_dataset:
    output:
        manifest=layout.manifest("{dataset}"),
    log:
        layout.log("prepare_dataset", "{dataset}"),
    benchmark:
        layout.benchmark("prepare_dataset", "{dataset}")
    wildcard_constraints:
        dataset=wiring.prepared_datasets,
    conda:
        "../envs/data.yaml"
    params:
        config=lambda wc: wiring.dataset_config(wc.dataset),
    script:
        "../scripts/prepare_dataset.py"


rule laion_miniworld:
    input:
        eval_manifest=lambda wc: layout.manifest(config["datasets"][wc.dataset]["source"]["eval"]),
    output:
        folder=directory(layout.curate_file("{dataset}", "source")),
    log:
        layout.log("laion_miniworld", "{dataset}"),
    benchmark:
        layout.benchmark("laion_miniworld", "{dataset}")
    wildcard_constraints:
        dataset=wiring.curated_datasets("miniworld"),
    conda:
        "../envs/data.yaml"
    params:
        config=lambda wc: wiring.curation_config(wc.dataset),
    script:
        "../scripts/curate.py"


# downloads need the internet: a local rule, so with the slurm profile it runs on the submitting (login) node
localrules:
    laion_download,


rule laion_download:
    output:
        folder=directory(layout.curate_file("{dataset}", "source")),
    log:
        layout.log("laion_download", "{dataset}"),
    benchmark:
        layout.benchmark("laion_download", "{dataset}")
    wildcard_constraints:
        dataset=wiring.curated_datasets("download"),
    conda:
        "../envs/curate.yaml"
    params:
        config=lambda wc: wiring.curation_config(wc.dataset),
    script:
        "../scripts/curate.py"


rule curate_ingest:
    input:
        source=lambda wc: wiring.curation_source(wc.dataset),
    output:
        candidates=layout.curate_file("{dataset}", "candidates.parquet"),
    log:
        layout.log("curate_ingest", "{dataset}"),
    benchmark:
        layout.benchmark("curate_ingest", "{dataset}")
    conda:
        "../envs/data.yaml"
    params:
        config=lambda wc: wiring.curation_config(wc.dataset),
        folder=lambda wc: wiring.curation_folder(wc.dataset),
    script:
        "../scripts/curate.py"


rule curate_match:
    input:
        candidates=layout.curate_file("{dataset}", "candidates.parquet"),
    output:
        matched=layout.curate_file("{dataset}", "matched.parquet"),
    log:
        layout.log("curate_match", "{dataset}"),
    benchmark:
        layout.benchmark("curate_match", "{dataset}")
    conda:
        "../envs/data.yaml"
    params:
        config=lambda wc: wiring.curation_config(wc.dataset),
    script:
        "../scripts/curate.py"


rule curate_text_filter:
    input:
        unpack(lambda wc: wiring.curation_embedder_inputs(wc.dataset, "text_filter")),
        matched=layout.curate_file("{dataset}", "matched.parquet"),
    output:
        text=layout.curate_file("{dataset}", "text_filter.parquet"),
    log:
        layout.log("curate_text_filter", "{dataset}"),
    benchmark:
        layout.benchmark("curate_text_filter", "{dataset}")
    conda:
        "../envs/metrics.yaml"
    resources:
        gpu=1,
    params:
        config=lambda wc: wiring.curation_config(wc.dataset),
    script:
        "../scripts/curate.py"


rule curate_checks:
    input:
        unpack(lambda wc: wiring.curation_embedder_inputs(wc.dataset, "checks")),
        text=layout.curate_file("{dataset}", "text_filter.parquet"),
        evals=lambda wc: list(wiring.curation_eval_sets(wc.dataset).values()),
    output:
        checks=layout.curate_file("{dataset}", "checks.parquet"),
        queue=layout.curate_file("{dataset}", "review_queue.parquet"),
    log:
        layout.log("curate_checks", "{dataset}"),
    benchmark:
        layout.benchmark("curate_checks", "{dataset}")
    conda:
        "../envs/metrics.yaml"
    resources:
        gpu=1,
    params:
        config=lambda wc: wiring.curation_config(wc.dataset),
        folder=lambda wc: wiring.curation_folder(wc.dataset),
        eval_sets=lambda wc: wiring.curation_eval_sets(wc.dataset),
    script:
        "../scripts/curate.py"


# the human step: `genbench review results/curate/<dataset> --decisions <file> --reviewer <name>` writes the
# decision files this rule reads (config datasets.<dataset>.review.decisions)
rule curate_final:
    input:
        text=layout.curate_file("{dataset}", "text_filter.parquet"),
        checks=layout.curate_file("{dataset}", "checks.parquet"),
        decisions=lambda wc: wiring.curation_decisions(wc.dataset),
    output:
        manifest=layout.manifest("{dataset}"),
        status=layout.curate_file("{dataset}", "status.parquet"),
    log:
        layout.log("curate_final", "{dataset}"),
    benchmark:
        layout.benchmark("curate_final", "{dataset}")
    wildcard_constraints:
        dataset=wiring.curated_datasets(),
    conda:
        "../envs/data.yaml"
    params:
        config=lambda wc: wiring.curation_config(wc.dataset),
        folder=lambda wc: wiring.curation_folder(wc.dataset),
    script:
        "../scripts/curate.py"


rule curate_datasheet:
    input:
        text=layout.curate_file("{dataset}", "text_filter.parquet"),
        checks=layout.curate_file("{dataset}", "checks.parquet"),
        status=layout.curate_file("{dataset}", "status.parquet"),
        decisions=lambda wc: wiring.curation_decisions(wc.dataset),
    output:
        classes=layout.table("curation_{dataset}_classes"),
        reasons=layout.table("curation_{dataset}_reasons"),
        agreement=layout.table("curation_{dataset}_agreement"),
        catch=layout.table("curation_{dataset}_catch"),
        md=layout.curate_file("{dataset}", "datasheet.md"),
        html=report(
            layout.curate_file("{dataset}", "datasheet.html"),
            caption="../report/curation/datasheet.rst",
            category="Curation",
            subcategory="Datasheets",
            labels={"datasheet": "{dataset}"},
        ),
        pdf=layout.figure("curation_coverage_{dataset}", "pdf"),
        png=report(
            layout.figure("curation_coverage_{dataset}", "png"),
            caption="../report/curation/coverage.rst",
            category="Curation",
            subcategory="Figures",
            labels={"figure": "curation_coverage_{dataset}"},
        ),
        csv=layout.figure("curation_coverage_{dataset}", "csv"),
    log:
        layout.log("curate_datasheet", "{dataset}"),
    benchmark:
        layout.benchmark("curate_datasheet", "{dataset}")
    conda:
        "../envs/plots.yaml"
    params:
        config=lambda wc: wiring.curation_config(wc.dataset),
    script:
        "../scripts/curate.py"
