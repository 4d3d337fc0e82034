"""Tiny fake copies of every registered dataset, each in its real on-disk layout.

``python tests/data/make_fake_datasets.py`` rewrites the small copies committed under
``tests/data/<name>/``; datasets with hundreds or thousands of classes (the ImageNet family,
Country211) are written by the tests into a temporary folder with :func:`write` instead. A few
8x8 images per class, annotation files in each dataset's own format.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent
ROOT = DATA.parents[1]
if str(ROOT) not in sys.path:  # run as a script: the package from this checkout
    sys.path.insert(0, str(ROOT))

from clip_lightning.datasets.docs import FAKES_IN_TEMP  # noqa: E402
from tests.data import fake_layouts as basic  # noqa: E402
from tests.data import fake_suite as suite  # noqa: E402
from tests.data.fake_layouts import Writer  # noqa: E402

WRITERS: dict[str, Writer] = {
    f.__name__: f
    for f in (
        basic.cifar10, basic.cifar100, basic.mnist, basic.stl10, basic.food101, basic.flowers102, basic.dtd,
        basic.oxford_pets, basic.eurosat, basic.imagefolder, basic.imagenet, suite.fgvc_aircraft,
        suite.caltech101, suite.sun397, suite.stanford_cars, suite.fer2013, suite.gtsrb, suite.country211,
        suite.pcam, suite.rendered_sst2, suite.clevr_count, suite.svhn, suite.voc2007, suite.imagenetv2,
        suite.imagenet_sketch, suite.imagenet_a, suite.imagenet_r, suite.objectnet,
    )
}  # fmt: skip
# Too many classes to commit: the tests write these into a temporary folder (docs/datasets.md says so).
GENERATED = FAKES_IN_TEMP
COMMITTED = tuple(name for name in WRITERS if name not in GENERATED)


def write(name: str, root: Path) -> Path:
    """Dataset ``name``'s fake copy under ``root`` (which must not exist yet); returns ``root``."""
    WRITERS[name](root)
    return root


def main() -> None:
    """Rewrite tests/data/<name>/ for every committed fake copy."""
    for name in COMMITTED:
        shutil.rmtree(DATA / name, ignore_errors=True)
        write(name, DATA / name)


if __name__ == "__main__":
    main()
