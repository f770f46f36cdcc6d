"""genbench: the importable library behind the Snakemake workflow (no Snakemake imports inside)."""

import os

__version__ = "0.1.0"

# OpenMP threads that wait for work sleep instead of spinning. Snakemake runs several jobs side by side, each with
# its own torch threads (training uses a fixed train.threads whatever cores the job was granted), so the cores are
# often oversubscribed; with libgomp's default (spin, then sleep) the spinning threads of one job steal the cores
# the others compute on. Measured on 2 cores: a 2-thread training loop took 333 s next to another one with the
# default policy and 4.5 s with PASSIVE (docs/scale.md). The policy changes no result: the thread count, and so
# every reduction order, stays the same. It must be set before torch (and its libgomp) loads, which every genbench
# stage does lazily after importing genbench; a user's own OMP_WAIT_POLICY is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
