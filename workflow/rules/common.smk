# The index the rules read: the validated config, the sweep's cells, and `wiring` (genbench.wiring.Wiring), which
# answers every question a rule asks of the config: its params' config subset, the checkpoints it reads, its
# catalog entry's env and GPUs, the targets. Paths come from `layout` (genbench.layout). The logic lives in
# genbench, where pytest reaches it (tests/test_wiring.py); nothing is defined here.
import sys

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, workflow.basedir)  # workflow/, the Snakefile's folder, holds genbench

from genbench import layout  # noqa: E402
from genbench.config import (  # noqa: E402
    ConfigError,
    config_hash,
    model_batch_size,
    model_shards,
    select,
    validate_config,
)
from genbench.layout import CELL, CELL3D, Cell  # noqa: E402
from genbench.plots.registry import FIGURES  # noqa: E402
from genbench.wiring import Wiring, per_cell, per_cell3d  # noqa: E402

try:
    validate_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

wiring = Wiring(config)
CELLS = wiring.cells
SCORE_EXTRACTOR = wiring.score_extractor


wildcard_constraints:
    **layout.WILDCARDS,
