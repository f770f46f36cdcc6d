# Data sets -> manifests (the same contract for the mini-world and the real data sets), and the reLAIONet
# curation (docs/curation.md): LAION-style source -> lemma matching -> text filter -> checks -> review -> manifest.


rule prepare_dataset:
    output:
        manifest="results/data/{dataset}/manifest.parquet",
    log:
        f"{LOGS}/prepare_dataset/{{dataset}}.log",
    benchmark:
        f"{BENCH}/prepare_dataset/{{dataset}}.tsv"
    wildcard_constraints:
        dataset=PREPARED_DATASETS,
    conda:
        "../envs/data.yaml"
    params:
        config=lambda wc: dataset_config(wc.dataset),
    script:
        "../scripts/prepare_dataset.py"


rule laion_miniworld:
    input:
        eval_manifest=lambda wc: manifest_path(config["datasets"][wc.dataset]["source"]["eval"]),
    output:
        folder=directory("results/curate/{dataset}/source"),
    log:
        f"{LOGS}/laion_miniworld/{{dataset}}.log",
    benchmark:
        f"{BENCH}/laion_miniworld/{{dataset}}.tsv"
    wildcard_constraints:
        dataset=curated_datasets("miniworld"),
    conda:
        "../envs/data.yaml"
    params:
        config=lambda wc: curation_config(wc.dataset),
    script:
        "../scripts/curate.py"


# downloads need the internet: a local rule, so with the slurm profile it runs on the submitting (login) node
localrules:
    laion_download,


rule laion_download:
    output:
        folder=directory("results/curate/{dataset}/source"),
    log:
        f"{LOGS}/laion_download/{{dataset}}.log",
    benchmark:
        f"{BENCH}/laion_download/{{dataset}}.tsv"
    wildcard_constraints:
        dataset=curated_datasets("download"),
    conda:
        "../envs/curate.yaml"
    params:
        config=lambda wc: curation_config(wc.dataset),
    script:
        "../scripts/curate.py"


rule curate_ingest:
    input:
        source=curation_source,
    output:
        candidates="results/curate/{dataset}/candidates.parquet",
    log:
        f"{LOGS}/curate_ingest/{{dataset}}.log",
    benchmark:
        f"{BENCH}/curate_ingest/{{dataset}}.tsv"
    conda:
        "../envs/data.yaml"
    params:
        config=lambda wc: curation_config(wc.dataset),
        folder=lambda wc: curation_folder(wc.dataset),
    script:
        "../scripts/curate.py"


rule curate_match:
    input:
        candidates="results/curate/{dataset}/candidates.parquet",
    output:
        matched="results/curate/{dataset}/matched.parquet",
    log:
        f"{LOGS}/curate_match/{{dataset}}.log",
    benchmark:
        f"{BENCH}/curate_match/{{dataset}}.tsv"
    conda:
        "../envs/data.yaml"
    params:
        config=lambda wc: curation_config(wc.dataset),
    script:
        "../scripts/curate.py"


rule curate_text_filter:
    input:
        unpack(lambda wc: curation_embedder_inputs(wc.dataset, "text_filter")),
        matched="results/curate/{dataset}/matched.parquet",
    output:
        text="results/curate/{dataset}/text_filter.parquet",
    log:
        f"{LOGS}/curate_text_filter/{{dataset}}.log",
    benchmark:
        f"{BENCH}/curate_text_filter/{{dataset}}.tsv"
    conda:
        "../envs/metrics.yaml"
    resources:
        gpu=1,
    params:
        config=lambda wc: curation_config(wc.dataset),
    script:
        "../scripts/curate.py"


rule curate_checks:
    input:
        unpack(lambda wc: curation_embedder_inputs(wc.dataset, "checks")),
        text="results/curate/{dataset}/text_filter.parquet",
        evals=lambda wc: list(curation_eval_sets(wc.dataset).values()),
    output:
        checks="results/curate/{dataset}/checks.parquet",
        queue="results/curate/{dataset}/review_queue.parquet",
    log:
        f"{LOGS}/curate_checks/{{dataset}}.log",
    benchmark:
        f"{BENCH}/curate_checks/{{dataset}}.tsv"
    conda:
        "../envs/metrics.yaml"
    resources:
        gpu=1,
    params:
        config=lambda wc: curation_config(wc.dataset),
        folder=lambda wc: curation_folder(wc.dataset),
        eval_sets=lambda wc: curation_eval_sets(wc.dataset),
    script:
        "../scripts/curate.py"


# the human step: `genbench review results/curate/<dataset> --decisions <file> --reviewer <name>` writes the
# decision files this rule reads (config datasets.<dataset>.review.decisions)
rule curate_final:
    input:
        text="results/curate/{dataset}/text_filter.parquet",
        checks="results/curate/{dataset}/checks.parquet",
        decisions=lambda wc: curation_decisions(wc.dataset),
    output:
        manifest="results/data/{dataset}/manifest.parquet",
        status="results/curate/{dataset}/status.parquet",
    log:
        f"{LOGS}/curate_final/{{dataset}}.log",
    benchmark:
        f"{BENCH}/curate_final/{{dataset}}.tsv"
    wildcard_constraints:
        dataset=curated_datasets(),
    conda:
        "../envs/data.yaml"
    params:
        config=lambda wc: curation_config(wc.dataset),
        folder=lambda wc: curation_folder(wc.dataset),
    script:
        "../scripts/curate.py"


rule curate_datasheet:
    input:
        text="results/curate/{dataset}/text_filter.parquet",
        checks="results/curate/{dataset}/checks.parquet",
        status="results/curate/{dataset}/status.parquet",
        decisions=lambda wc: curation_decisions(wc.dataset),
    output:
        classes="results/tables/curation_{dataset}_classes.parquet",
        reasons="results/tables/curation_{dataset}_reasons.parquet",
        agreement="results/tables/curation_{dataset}_agreement.parquet",
        catch="results/tables/curation_{dataset}_catch.parquet",
        md="results/curate/{dataset}/datasheet.md",
        html=report(
            "results/curate/{dataset}/datasheet.html",
            caption="../report/curation/datasheet.rst",
            category="Curation",
            subcategory="Datasheets",
            labels={"datasheet": "{dataset}"},
        ),
        pdf="results/figures/curation_coverage_{dataset}.pdf",
        png=report(
            "results/figures/curation_coverage_{dataset}.png",
            caption="../report/curation/coverage.rst",
            category="Curation",
            subcategory="Figures",
            labels={"figure": "curation_coverage_{dataset}"},
        ),
        csv="results/figures/curation_coverage_{dataset}.csv",
    log:
        f"{LOGS}/curate_datasheet/{{dataset}}.log",
    benchmark:
        f"{BENCH}/curate_datasheet/{{dataset}}.tsv"
    conda:
        "../envs/plots.yaml"
    params:
        config=lambda wc: curation_config(wc.dataset),
    script:
        "../scripts/curate.py"
