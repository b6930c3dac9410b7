"""Many clients in one process or on a Ray cluster: ``fedclient simulate``.

``simulate`` is the command (a sandbox federation and one ``ClientGroup``); ``group`` builds
and stops a group of full clients from the composition root; ``gate``, ``overload`` and
``scratch`` are what thousands of clients in one process share; ``ray_driver``, ``ray_actor``
and ``ray_report`` run groups as Ray actors; ``task_timing`` measures each task at its ports.
"""
