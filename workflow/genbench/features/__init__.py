"""Feature extractors (registry) whose outputs feed every 2D metric."""
