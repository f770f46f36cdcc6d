"""Figures: one function per figure, each drawn from a table only."""
