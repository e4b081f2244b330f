"""A real Kubernetes control plane for podiq's integration tests, run as local processes."""
