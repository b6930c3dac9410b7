"""fedclient's test kit: in-memory fakes of every port, and a fault rig over the real gRPC adapter.

``fedclient.testing.fakes`` has a fake for each port in ``fedclient.domain.ports`` (a
controller, a combiner that records every attempt and can be told to fail, lose a reply or
refuse a token, a trainer, an outbox store, a clock whose sleeps take no time, ids,
randomness). A package author tests callbacks with them: build the client with
``fedclient.app.container.build_container`` and override ``connector``, ``discovery`` and
``clock`` with the fakes (``tests/contract/test_second_transport.py`` does exactly that).
A transport author runs the same scenarios against their adapter and against the fakes.

``fedclient.testing.fault_rig`` runs one client against the sandbox combiner through a
fault-injecting TCP proxy: combiner restarts, dropped or stalled connections, killed
clients, mid-transfer. docs/ARCHITECTURE.md lists the ports, adapters and fakes.
"""
