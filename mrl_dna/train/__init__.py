"""Training: Matryoshka losses (losses.py), the genome window sampler (sampler.py), the loop (trainer.py)."""
