"""mrl-dna: Matryoshka embeddings of long DNA sequences."""

__version__ = "0.1.0"
