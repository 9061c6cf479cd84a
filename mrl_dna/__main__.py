"""`python -m mrl_dna ...` (also what `torchrun -m mrl_dna` runs)."""

from mrl_dna.cli import main

if __name__ == "__main__":
    main()
