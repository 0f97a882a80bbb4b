"""Differential fuzzing: random models and graphs, compiled and checked against the reference interpreter."""
