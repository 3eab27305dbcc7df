"""What training, evaluation and serving share: sessions, checkpoints, atomic files, run configs."""
