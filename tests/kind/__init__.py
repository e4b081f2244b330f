"""A kind cluster built offline from source: the real-container test tier (see README.md)."""
