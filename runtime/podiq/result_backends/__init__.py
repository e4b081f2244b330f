"""taskiq's `taskiq.result_backends` import paths."""
