"""taskiq's `taskiq.brokers` import paths (the Kubernetes broker is `podiq.kubernetes.KubernetesBroker`)."""
