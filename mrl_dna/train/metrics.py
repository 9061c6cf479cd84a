"""metrics.jsonl (one JSON object per optimizer step; {"step", "val": ...} per validation) and the one-line
progress text of a step.
"""

from __future__ import annotations

import json
from pathlib import Path


class Metrics:
    """metrics.jsonl: one JSON object per line. On resume, lines past the resumed step are dropped so the
    file reads as one uninterrupted run."""

    def __init__(self, path: Path, start: int, enabled: bool) -> None:
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        if start == 0:
            if path.exists():
                path.unlink()
            return
        if path.exists():
            keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= start]
            path.write_text("".join(ln + "\n" for ln in keep))

    def write(self, rec: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(rec) + "\n")




def progress_line(step: int, logs: dict[str, float], dims, lr: float) -> str:
    key = "infonce" if f"infonce@{dims[0]}" in logs else "pairs"
    per = " ".join(f"{k}:{logs[f'{key}@{k}']:.3f}" for k in dims if f"{key}@{k}" in logs)
    locus = " ".join(f"{name.split('@')[1]}:{v:.3f}" for name, v in logs.items() if name.startswith("locus@"))
    return f"loss {logs['loss']:.3f} | {key} {per}" + (f" | locus {locus}" if locus else "") + f" | lr {lr:.2e}"
