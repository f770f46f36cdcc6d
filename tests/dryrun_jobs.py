"""`python tests/dryrun_jobs.py OUT.jsonl <snakemake arguments>`: a Snakemake dry run that also writes each planned
job's rule, wildcards, conda env file, resources, inputs and outputs to OUT.jsonl (one JSON object a line), which a
dry run's printout leaves out (the env is not printed without --use-conda). See wfutil.planned_job_details."""

import json
import sys

from snakemake.executors import dryrun

_run_job = dryrun.Executor.run_job


def _record(out, job) -> None:
    for j in job.jobs if job.is_group() else [job]:
        spec = j.conda_env_spec
        out.write(json.dumps({
            "rule": j.rule.name,
            "wildcards": dict(j.wildcards_dict),
            "conda": str(spec.file.get_path_or_uri(secret_free=True)) if spec is not None and spec.file else None,
            "resources": {k: str(v) for k, v in sorted(j.resources.items()) if k != "tmpdir"},
            "threads": j.threads,
            "input": sorted(map(str, j.input)),
            "output": sorted(map(str, j.output)),
        }, sort_keys=True) + "\n")
    out.flush()


if __name__ == "__main__":
    with open(sys.argv[1], "w") as out:
        def run_job(self, job):
            _record(out, job)
            return _run_job(self, job)

        dryrun.Executor.run_job = run_job
        from snakemake.cli import main

        sys.argv = ["snakemake", "-n", *sys.argv[2:]]
        main()
