"""podiq's public names, as httpx checks its own."""

from __future__ import annotations

import types

import podiq


def test_all_is_sorted_and_lists_every_public_name() -> None:
    public = {
        name
        for name in dir(podiq)
        if not name.startswith("_") and not isinstance(getattr(podiq, name), types.ModuleType)
    }
    exported = set(podiq.__all__) - {"__version__"}
    assert podiq.__all__ == sorted(podiq.__all__)
    assert exported == public
    assert len(podiq.__all__) == len(set(podiq.__all__))


def test_every_exported_name_exists() -> None:
    for name in podiq.__all__:
        assert hasattr(podiq, name), name
    assert isinstance(podiq.__version__, str) and podiq.__version__


def test_exported_classes_claim_podiq() -> None:
    for name in podiq.__all__:
        member = getattr(podiq, name)
        if name == "TaskiqDepends" or name.startswith("__"):
            continue
        module = getattr(member, "__module__", "")
        assert module.startswith("podiq"), f"{name} comes from {module}"
