"""The Python API, named as FEDn's client package: ``fedclient.network.clients``.

A facade like ``fedclient.app``: synchronous classes over the domain and the adapters,
wired by the app's container, so FEDn code ports by changing its import root.
"""
