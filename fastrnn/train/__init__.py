"""Training: optimizers, clipping, checkpoints and the step loop."""
