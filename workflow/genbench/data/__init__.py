"""Data sets: manifests (the contract every data set meets), the mini-world, adapters."""
