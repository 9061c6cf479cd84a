"""`mrl-dna embed --model <official Caduceus dir>` end to end: the stored vector is the RC-invariant mean of
the backbone's final hidden state (PS: forward half + flipped RC half), L2-normalised; `info` names it."""

from __future__ import annotations

import numpy as np
import pytest

from mrl_dna import dna
from mrl_dna.store import EmbeddingStore

from conftest import run_cli, shared_dir

FIXTURE = shared_dir() / "fixtures" / "caduceus" / "ps_small"
pytestmark = pytest.mark.skipif(not FIXTURE.is_dir(), reason=f"Caduceus fixture not found at {FIXTURE} (../shared absent)")


def test_embed_with_caduceus_dir_gives_rc_invariant_mean_of_hidden(tmp_path, capsys):
    ids = np.load(FIXTURE / "input_ids.npy")  # (3, 257) Caduceus token ids
    hidden = np.load(FIXTURE / "hidden.npy").astype(np.float64)  # (3, 257, 64): [forward | RC stored flipped]
    fa = tmp_path / "rows.fa"
    fa.write_text("".join(f">row{i}\n{dna.decode(row.astype(np.uint8))}\n" for i, row in enumerate(ids)))
    out = tmp_path / "cad.h5"
    code, _, _ = run_cli(["embed", str(fa), "-o", str(out), "--model", str(FIXTURE), "--quiet", "--device", "cpu"], capsys)
    assert code == 0
    d = hidden.shape[-1] // 2
    expected = (hidden[..., :d] + hidden[:, ::-1, d:][..., ::-1]).mean(1) / 2  # (3, d)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    got = EmbeddingStore.open(out).read()
    np.testing.assert_allclose(got, expected, atol=1e-4)

    code, out_text, _ = run_cli(["info", str(out)], capsys)
    assert code == 0 and "caduceus" in out_text.lower()
