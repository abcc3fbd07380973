"""The recipes curate ships (YAML only; this file makes the folder the package `curate_pipelines`)."""
