"""The 3D track: medical and object inputs, ground-truth shapes, reconstructors and their scoring."""
