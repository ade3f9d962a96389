"""Active learning: uncertainty strategies, batch selection, pool scoring, checkpoints, the loop."""
