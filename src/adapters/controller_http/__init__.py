"""The controller's REST API (FEDn 0.33 ``/api/v1``) behind the Discovery and PackageSource ports."""

from .discovery import HttpxDiscovery
from .endpoint import ControllerEndpoint
from .packages import HttpxPackageSource

__all__ = ["ControllerEndpoint", "HttpxDiscovery", "HttpxPackageSource"]
