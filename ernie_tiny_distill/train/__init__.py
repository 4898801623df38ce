"""Training: one loop for every stage (trainer), the stages (general, supervised), checkpoints, run directories."""
