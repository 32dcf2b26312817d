"""Fuzzing: the contract harness, a short deterministic run of every target, and the regression inputs."""
