"""What runs on a trained checkpoint: `mhsft infer`, `deploy` and `export`, and the target they act on."""
