"""The detector benchmark engine: datasets, decode + preprocess, cached tensors, sandboxed runs, reports."""
