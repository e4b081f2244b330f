"""taskiq's `taskiq.depends` import paths."""
