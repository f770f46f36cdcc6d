"""Diff2to3 (issue 20) at toy scale: MARoPE positions, the SMDiT / TRELLIS-style generator transformers and the
2to3-VAE (``diff2to3.vae``).

See docs/diff2to3.md for what follows the paper, what departs from it and why.
"""

from .positions import apply_rope, image_positions, rope_angles, sinusoidal_3d, split_head_dim
from .transformer import (
    PRESETS,
    Diff2to3Config,
    DoubleStreamBlock,
    SingleStreamBlock,
    SMDiT,
    TrellisDiT,
    build,
    flow_matching_loss,
)
from .vae import SparseVAE, VAEConfig

__all__ = ["PRESETS", "SMDiT", "Diff2to3Config", "DoubleStreamBlock", "SingleStreamBlock", "SparseVAE", "TrellisDiT",
           "VAEConfig",
           "apply_rope", "build", "flow_matching_loss", "image_positions", "rope_angles", "sinusoidal_3d",
           "split_head_dim"]
