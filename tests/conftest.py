"""The harness's own tests.

The lab runs they start as subprocesses (reports, reuse, side-by-side runs, broken facts) test the harness, not
the pods: they run on KWOK nodes, so several can share the machine at once and none waits for a microVM. The
microVM data plane has its own tests (tests/environment, tests/emulation/test_microvm_data_plane.py), which ask
for it explicitly, and `nox -s labs` runs every lab on it.
"""

import os

os.environ.setdefault("FARGATE_LABS_DATA_PLANE", "kwok")
