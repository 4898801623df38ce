"""Training: one loop for every stage, stages, checkpoints and run directories."""
