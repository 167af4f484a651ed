"""SageMaker's Factorization Machines: second-order FMs for sparse, very wide data."""

from streamfit.algorithms.factorization_machines.algorithm import FactorizationMachines
from streamfit.algorithms.factorization_machines.model import FactorizationMachinesModel

__all__ = ["FactorizationMachines", "FactorizationMachinesModel"]
