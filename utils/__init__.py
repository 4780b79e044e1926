"""Data, degradations, image I/O, metrics and checkpoints for AirNet."""
