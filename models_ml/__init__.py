"""Fraud detection and reward personalisation: features, training, evaluation, scoring and the
model registry, as plain functions over Arrow/Polars frames. Imports nothing else of ours."""
