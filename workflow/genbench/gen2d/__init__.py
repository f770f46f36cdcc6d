"""2D generators: architectures, samplers, the generator registry, training of the mini models, generation."""
