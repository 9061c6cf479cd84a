"""`mrl-dna embed`: records -> windows -> fixed-shape batches -> window embeddings -> one row per record (or
file) -> HDF5. `pipeline` is the batch engine, `run` the record/file embedding and the resumable run into a
file, `distributed` the same run over torchrun's ranks."""

from mrl_dna.embed.run import EmbedSummary, ShortRecords, embed_fasta, embed_files, embed_sequences

__all__ = ["EmbedSummary", "ShortRecords", "embed_fasta", "embed_files", "embed_sequences"]
