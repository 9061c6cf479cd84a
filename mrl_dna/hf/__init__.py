"""transformers integration: mrl-dna model directories load through `transformers.AutoModel` once
`mrl_dna` is imported, in either import order, without making `import mrl_dna` (or `import transformers`)
slower.

    import mrl_dna, transformers
    model = transformers.AutoModel.from_pretrained("mrl_dna/default_model")   # an MrlDnaHFModel
    model.encode(["ACGT" * 500])                                                 # == mrl_dna's encode
    model.save_pretrained("out")                # config.json + model.safetensors + README.md (hub card)

How the registration is timed (transformers is optional at import time and slow to import: 0.7 s, 4 s
with its model classes and torch):
- `import mrl_dna` calls `install()`. The registry of transformers' Auto classes lives in two modules:
  `transformers.models.auto.configuration_auto` (AutoConfig) and `...modeling_auto` (AutoModel). Each one
  that is already imported is registered at once; for the others a tiny import hook (a meta-path finder
  that only wraps those two names) registers right after transformers imports them. So `import
  transformers` first, then `import mrl_dna`, works; `import mrl_dna` first, then `import transformers`
  works; and neither import pulls in the other, nor torch.
- `register()` does both now, importing transformers; for code that prefers to say it.
The config and model classes themselves live in `hf/config.py` and `hf/model.py` (they import transformers).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings

_CONFIG_MODULE = "transformers.models.auto.configuration_auto"
_MODEL_MODULE = "transformers.models.auto.modeling_auto"
_done: set[str] = set()


def register() -> None:
    """Register mrl-dna's config and model classes with transformers' AutoConfig and AutoModel (idempotent)."""
    _register_config()
    _register_model()


def _register_config() -> None:
    if _CONFIG_MODULE in _done:
        return
    from transformers import AutoConfig

    from mrl_dna.hf.config import MrlDnaConfig

    AutoConfig.register(MrlDnaConfig.model_type, MrlDnaConfig, exist_ok=True)
    _done.add(_CONFIG_MODULE)


def _register_model() -> None:
    if _MODEL_MODULE in _done:
        return
    _register_config()
    from transformers import AutoModel

    from mrl_dna.hf.config import MrlDnaConfig
    from mrl_dna.hf.model import MrlDnaHFModel

    AutoModel.register(MrlDnaConfig, MrlDnaHFModel, exist_ok=True)
    _done.add(_MODEL_MODULE)


_REGISTER = {_CONFIG_MODULE: _register_config, _MODEL_MODULE: _register_model}


def _safely(fn) -> None:
    """Registration must never break the user's import: a transformers we cannot work with is a warning."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 (any failure inside a foreign package's import)
        warnings.warn(f"mrl-dna: could not register with transformers ({type(e).__name__}: {e}); "
                      "AutoModel will not know mrl-dna models (mrl_dna.load_model still works)", stacklevel=3)


class _Loader(importlib.abc.Loader):
    """Runs the real loader, then registers (the module is complete by then)."""

    def __init__(self, real: importlib.abc.Loader, name: str) -> None:
        self.real, self.name = real, name

    def create_module(self, spec):
        return self.real.create_module(spec)

    def exec_module(self, module) -> None:
        self.real.exec_module(module)
        _safely(_REGISTER[self.name])


class _Finder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for the two watched names it asks the other finders and wraps their loader."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _REGISTER or fullname in _done:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, fullname)
                return spec
        return None


def install() -> None:
    """Register now what transformers has already imported; hook the rest (called by `import mrl_dna`)."""
    for name, fn in _REGISTER.items():
        if name in sys.modules and name not in _done:
            _safely(fn)
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
