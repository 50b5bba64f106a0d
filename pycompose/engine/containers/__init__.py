"""Containers in the engine daemon: Docker's ``/containers/*``, ``/exec/*`` and ``/commit``.

- ``api``: the component (``setup(ctx)``) and the lifecycle routes; ``fileapi``: export,
  commit, diff and ``cp`` archives; ``execs``: exec; ``attach``: logs, attach, resize.
- ``manager``: records, create, list, wait, rename and removal; ``runner``: start, stop,
  kill, pause, the exit watcher and restart policies; ``recovery``: re-adoption and crash
  debris at daemon start.
- ``bundle``: image config merge and OCI spec parameters; ``request``: create validation;
  ``record``/``store``/``views``/``names``: the model, its crash-safe store and API shapes;
  ``stats``, ``top``, ``commit``, ``archive``: the rest of the API's figures and files.
"""
