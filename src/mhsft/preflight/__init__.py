"""The checks `train` runs before swift starts: SwanLab and the model hub, in bounded child processes."""
