"""mrl-dna: Matryoshka embeddings of long DNA sequences.

The Python API (what `mrl-dna embed` does, from Python):

    import mrl_dna
    model = mrl_dna.load_model()                        # the bundled default model, or a directory
    X = model.encode(["ACGT..." , "GGCA..."], dim=64)   # (n, 64) float32, rows L2-normalised
    ids, Y = mrl_dna.read_embeddings("db.h5", dim=64)   # an embedding file written by `mrl-dna embed`

Importing mrl_dna is cheap: torch (and transformers) load only when a model is loaded. `import mrl_dna` also
makes mrl-dna model directories loadable through `transformers.AutoModel`, whichever of the two is imported
first (mrl_dna/hf: registered when transformers is imported, never importing it here).
"""

from mrl_dna import hf as _hf
from mrl_dna.version import __version__

__all__ = ["Model", "__version__", "load_model", "read_embeddings", "register_transformers"]

_hf.install()


def __getattr__(name: str):
    # the API pulls in torch: load it on first use, not on `import mrl_dna` (the CLI starts in ~0.3 s)
    if name in ("Model", "load_model", "read_embeddings"):
        from mrl_dna import api

        return getattr(api, name)
    if name == "register_transformers":
        return _hf.register
    raise AttributeError(f"module 'mrl_dna' has no attribute {name!r}")
