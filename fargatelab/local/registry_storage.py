"""The offline registry's storage, published once beside the stand-in images and served read-only by every
environment's registry.

Publishing the images (ten pushes, a few hundred megabytes written and hashed) took an environment's start
some four CPU-seconds, spent just while the API server, moto and the test workers start too. The tree the
registry writes is the same every time for the same images, so it is written once, by a registry of its own,
into ``<images>/registry`` and named in its ``published.json``; a start then only serves it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

from .registry import Images, Registry, publish

__all__ = ["published_storage"]


def published_storage(images: Images, crane_bin: str, registry_bin: str) -> Path:
    """The storage tree holding every image of ``images`` under its mirror names; published now if it does not
    hold exactly these (another process publishing meanwhile is waited for)."""
    root = images.root / "registry"
    wanted = {name: stand_in.digest for name, stand_in in sorted(images.records.items())}
    with open(images.root / "registry.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _holds(root) == wanted:
            return root
        work = images.root / "registry.partial"
        shutil.rmtree(work, ignore_errors=True)
        with Registry(registry_bin, work) as registry:
            publish(images, crane_bin, registry.address)
        for name in ("config.yml", "registry.log"):  # the publishing registry's own, not the tree's
            (work / name).unlink(missing_ok=True)
        (work / "published.json").write_text(json.dumps(wanted, indent=1))
        shutil.rmtree(root, ignore_errors=True)
        os.replace(work, root)
    return root


def _holds(root: Path) -> dict[str, str] | None:
    try:
        held = json.loads((root / "published.json").read_text())
    except (OSError, ValueError):
        return None
    return held if isinstance(held, dict) else None
