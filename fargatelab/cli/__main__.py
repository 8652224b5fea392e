"""``python -m fargatelab.cli``: the ``fargate-lab`` command where its entry point is not installed."""

from __future__ import annotations

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
