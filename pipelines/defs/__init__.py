"""The Dagster definitions, one module per area; pipelines/definitions.py merges them."""
