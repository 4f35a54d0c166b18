"""mhsft: a launcher for ms-swift fine-tuning with SwanLab tracking always on."""

__version__ = "0.1.0"
