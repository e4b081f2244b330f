"""`taskiq.kicker`, renamed."""

from podiq._kicker import AsyncKicker

__all__ = ["AsyncKicker"]
