"""reLAIONet curation: LAION-style captioned images -> a proofread, ImageNet-labelled evaluation set.

Stages (each a rule with an inspectable Parquet output; docs/curation.md): ingest (img2dataset layout) -> lemma
matching -> CLIP text filter -> automatic checks -> human review (``genbench review``) -> final manifest,
datasheet and coverage figure.
"""
