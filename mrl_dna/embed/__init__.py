"""`mrl-dna embed`: records -> windows -> fixed-shape batches -> window embeddings -> one row per record (or
file) -> HDF5. `options` holds EmbedOptions (every embed option, once), `pipeline` the batch engine, `records`
the record and file embedding (the rows), `run` the resumable run into a file (embed_fasta), `distributed` the
same run over torchrun's ranks."""

from mrl_dna.embed.options import EmbedOptions
from mrl_dna.embed.records import ShortRecords, embed_files, embed_sequences
from mrl_dna.embed.run import EmbedSummary, embed_fasta

__all__ = ["EmbedOptions", "EmbedSummary", "ShortRecords", "embed_fasta", "embed_files", "embed_sequences"]
