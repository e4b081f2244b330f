"""taskiq's `taskiq.scheduler` import paths."""
