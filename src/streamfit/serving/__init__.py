"""Model endpoints in SageMaker's container contract (``streamfit serve``): see
:mod:`streamfit.serving.app` for the routes."""

from streamfit.serving.app import ServeSettings, create_app
from streamfit.serving.models import ServedModel, load_served

__all__ = ["ServeSettings", "ServedModel", "create_app", "load_served"]
