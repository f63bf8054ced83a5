"""The image holds this tree's code: a layer cache that kept an old install (an engine not
keying a `RUN --mount=from=build` step on what the build stage produced) fails here, not as a
confusing start-up error in the tests that run it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.container

# Prints {path under site-packages: sha256} of every coffeebuddy module installed in the image.
_INSTALLED = """
import hashlib, json, pathlib, coffeebuddy
out = {}
for root in map(pathlib.Path, coffeebuddy.__path__):
    for path in sorted(root.rglob("*.py")):
        out[str(path.relative_to(root.parent))] = hashlib.sha256(path.read_bytes()).hexdigest()
print(json.dumps(out))
"""


def _tree(sources: dict[str, Path]) -> dict[str, str]:
    """The same map for the packages the Dockerfile copies, read from this checkout."""
    out: dict[str, str] = {}
    for src in sources.values():
        for path in sorted((src / "coffeebuddy").rglob("*.py")):
            out[str(path.relative_to(src))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_the_image_holds_this_checkouts_code(
    engine: Any, image: str, image_sources: dict[str, Path]
) -> None:
    result = engine.run(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "python",
        image,
        "-c",
        _INSTALLED,
        timeout=120,
    )
    installed: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    tree = _tree(image_sources)
    assert tree, "no source found for the Dockerfile's packages"
    stale = sorted(p for p in tree.keys() & installed.keys() if tree[p] != installed[p])
    assert not stale, f"the image's code differs from the checkout in: {stale[:10]}"
    missing = sorted(tree.keys() - installed.keys())
    assert not missing, f"in the checkout, missing from the image: {missing[:10]}"
    extra = sorted(installed.keys() - tree.keys())
    assert not extra, f"in the image, not in the checkout: {extra[:10]}"
