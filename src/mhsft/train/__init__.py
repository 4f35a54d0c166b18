"""`mhsft train`: the checks before swift starts and the training run itself."""
