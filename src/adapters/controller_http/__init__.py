"""The controller's REST API (FEDn 0.33 ``/api/v1``) behind the Discovery and PackageSource ports."""

from adapters.controller_http.discovery import HttpxDiscovery
from adapters.controller_http.endpoint import ControllerEndpoint
from adapters.controller_http.packages import HttpxPackageSource

__all__ = ["ControllerEndpoint", "HttpxDiscovery", "HttpxPackageSource"]
