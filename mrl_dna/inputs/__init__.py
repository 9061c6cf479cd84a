"""Reading sequences: FASTA/GenBank/EMBL files and stdin (`fasta`), genome files and their group labels
(`genomes`), BED intervals of an indexed FASTA (`regions`). Everything here yields `fasta.Record`s of token
ids or names files; nothing here embeds or stores."""
