"""`mcs-v2g depot`'s data contract (issue 12): the scenario it plays and the report an external judge checks."""

from .judge import judge
from .report import DepotReport
from .scenario import DepotScenario, DepotScenarioError, load

__all__ = ["DepotReport", "DepotScenario", "DepotScenarioError", "judge", "load"]
