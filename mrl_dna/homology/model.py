"""Which calibration serves an embedding file: the calibration.json of the model that made it."""

from __future__ import annotations

from pathlib import Path

from mrl_dna.errors import ConfigError
from mrl_dna.homology.calibration import CALIBRATION_FILE, ModelCalibration, load_calibration


def calibration_for(attrs: dict, model_dir: str | Path | None = None) -> tuple[ModelCalibration | None, str]:
    """(the calibration built for the model that wrote a file with these attributes, or None; where it was
    looked for). model_dir: the user's --model (its calibration must be the file's model's: ConfigError
    otherwise); else the directory embed recorded (attribute model_dir), then the bundled default model, the
    first whose calibration.json names the file's model_hash."""
    want = str(attrs.get("model_hash", ""))
    if model_dir is not None:
        cal = load_calibration(model_dir)
        if cal is not None and cal.model_hash != want:
            raise ConfigError(f"{Path(model_dir) / CALIBRATION_FILE} was built for model {cal.model_hash[:12]}, "
                              f"but the file was embedded with model {want[:12]}; pass --model DIR of that model")
        return cal, str(model_dir)
    from mrl_dna.model.loader import DEFAULT_MODEL_DIR  # here: model/ loads torch, which record-level dist never needs

    tried = []
    for candidate in dict.fromkeys(filter(None, [str(attrs.get("model_dir") or ""), str(DEFAULT_MODEL_DIR)])):
        cal = load_calibration(candidate)
        if cal is not None and cal.model_hash == want:
            return cal, candidate
        tried.append(candidate)
    return None, " or ".join(tried)
