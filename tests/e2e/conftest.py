from tests.integration.conftest import podiq_crd

__all__ = ["podiq_crd"]
