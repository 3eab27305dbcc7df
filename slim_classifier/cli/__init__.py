"""What every command shares: flag definitions and the runner (logging, one-line errors)."""
