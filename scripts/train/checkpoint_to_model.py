"""Export a training checkpoint as a model directory, to benchmark or ship a run before it ends.

usage: python scripts/train/checkpoint_to_model.py RUN_DIR/checkpoints/step-0001000.pt OUT_DIR
       python scripts/train/checkpoint_to_model.py RUN_DIR OUT_DIR        (the run's latest checkpoint)
"""

from __future__ import annotations

import sys
from pathlib import Path

from mrl_dna.errors import MrlDnaError
from mrl_dna.train.checkpoints import export_checkpoint, latest_checkpoint


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    src, out = Path(argv[0]), Path(argv[1])
    ckpt = latest_checkpoint(src / "checkpoints") if src.is_dir() else src
    try:
        if ckpt is None:
            raise MrlDnaError(f"{src} holds no checkpoints/step-*.pt")
        step = export_checkpoint(ckpt, out)
    except MrlDnaError as e:
        print(f"checkpoint_to_model.py: error: {e}", file=sys.stderr)
        return 1
    print(f"checkpoint_to_model.py: step {step} of {ckpt} -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
