"""genbench: the importable library behind the Snakemake workflow (no Snakemake imports inside)."""

__version__ = "0.1.0"
