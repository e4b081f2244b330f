"""The podiq operator: runs each TaskRun's attempts as Jobs.

It imports podiq's resource models; podiq never imports it.
"""

from podiq_operator.config import ApiConfig, JobConfig, OperatorConfig
from podiq_operator.main import cli, operate, run

__all__ = ["ApiConfig", "JobConfig", "OperatorConfig", "cli", "operate", "run"]
