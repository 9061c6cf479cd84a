"""HDF5 embedding store: one file = one embedding set, written resumably, read by Matryoshka prefix.

Modules: format.py (names, status codes, chunking, attributes), compat.py (which files may be used together:
comparable vectors, each file once), writer.py (EmbeddingWriter, the output lock,
the input/output checks), reader.py (EmbeddingStore), merge.py (merge_stores), export.py (export_store).

Layout (format "mrl-dna-embeddings", format_version 1; n records, D = full dim, m saved windows):
    /embeddings          (n, D) float32|float16  rows L2-normalised at full D; zero rows where status != ok
    /ids                 (n,)   utf-8 str        FASTA ids
    /lengths             (n,)   int64            record length, bp
    /n_windows           (n,)   int32            windows embedded (kept) per record
    /n_skipped           (n,)   int32            mostly-N windows skipped per record
    /status              (n,)   int8             0 ok, 1 empty, 2 all-N  (STATUS_CODES)
    /order               (n,)   int64            index of the record in the full (unsharded) input; -1 unknown
    /checksum            (n,)   uint64           dna.checksum of the record's tokens (per-file: embed.records.file_checksum);
                                                 0 unknown; resume compares it (absent in files before issue 22)
    /windows/record      (m,)   int64            row in /embeddings of the record the window belongs to
    /windows/start, end  (m,)   int64            [start, end) in bp, 0-based          (only with save_windows)
    /windows/embeddings  (m, D) float32|float16  per-window vectors, L2-normalised
  embed --per-file (attribute per_file = True; a row is an input file, its id the file name without FASTA and
  compression suffixes, its vector the weighted centroid of all the file's windows; c records in all):
    /contigs/name        (c,)   utf-8 str        record ids of each file, in file order (may repeat across files)
    /contigs/record      (c,)   int64            row in /embeddings of the file the record belongs to
    /contigs/length      (c,)   int64            record length, bp
    /windows/contig      (m,)   int64            index into /contigs: the window's [start, end) is on that record
Attributes: format, format_version, dim, dtype, matryoshka_dims, model_name, model_hash, model_kind, window,
stride, pooling, shard ("I/N" or ""), save_windows, windows_stride (with saved windows: the stride they were cut
at; absent in files before issue 20, whose windows are at `stride`), per_file (only when true), mrl_dna_version, command,
created, complete, rows_committed, windows_committed, contigs_committed (per-file files); from embed also inputs,
model_dir, max_n_fraction and the input's identity input_records, input_bp, input_digest (INPUT_KEYS: what
merge checks shards against; absent in files from stdin and from before issue 22) (plus whatever else the
caller passes in `attrs`).

Chunking (why the prefix read is cheap): /embeddings is chunked (ROWS_PER_CHUNK, c) with c = the gcd of
the Matryoshka dims (8 for 8,16,...,D), so every Matryoshka boundary is a chunk boundary and `[:, :k]`
touches only the first k/c column chunks of each row block. Measured (h5py 3.16 / HDF5 2.0, bytes read
through a counting file object, fresh open) on 20,000 x 128 float32 rows, an 11.9 MB file: `[:, :8]` reads
0.69 MB, `[:, :16]` 1.34 MB, `[:, :32]` 2.66 MB, `[:, :128]` 10.5 MB; tests/test_store.py
(test_prefix_read_touches_only_prefix_chunks) keeps this true. Considered and rejected: one dataset per column
group (same I/O, but every reader would have to reassemble a full row and /embeddings would stop being one
(n, D) array); chunks of 1 column (prefix reads just as cheap, but 8x more chunks and B-tree entries).
512 rows per chunk keeps a chunk at 16 KiB (float32, c=8): small files stay small (D=128: 256 KiB
minimum), and a 1M-record file has ~31k chunks.

Crash safety: a writer writes PATH.partial (attr complete=False); each append writes the rows, flushes,
then records `rows_committed` and flushes again, so a file killed at any moment holds at least the rows
it claims. Resume trusts only `rows_committed` and truncates whatever lies beyond. finish() sets
complete=True, flushes, closes and renames atomically (os.replace) to PATH, so PATH is never half-written.
Checked by a stress loop (13 runs of 3,000 records with windows, float32 and float16, each SIGKILLed at
random moments 18-173 times and resumed): every final file was bitwise identical to an uninterrupted one.
The loop found one trap, now avoided: rewriting a string attribute after creation (global heap) and being
killed mid-flush left that attribute unreadable; after creation only fixed-size attributes are rewritten.

A full disk: a write that fails for want of space inside an HDF5 flush does not stop the flush, which goes on
rewriting object headers and B-trees in place, pointing at chunks past the end of the file: the committed rows
became unreadable ("cannot resume (addr overflow)"). So each append first reserves the disk blocks it may need
(writer._reserve: fallocate with FALLOC_FL_KEEP_SIZE, the file's size unchanged; an upper bound of the chunks it
starts, its strings and a margin, checked by tests/test_store.py); when that fails nothing has been written and
the DiskFullError's promise of a resume holds (tests/test_cli_data_safety.py fills tmpfs disks of 6 sizes).
"""

from mrl_dna.store.export import ExportFormat, ExportSummary, export_store
from mrl_dna.store.compat import check_comparable, check_distinct, same_file
from mrl_dna.store.format import (COMPARABLE_KEYS, DTYPES, FORMAT, FORMAT_VERSION, INPUT_KEYS, MERGE_KEYS, RESUME_KEYS, ROWS_PER_CHUNK,
                                  STATUS_CODES, STATUS_NAMES, ContigRows, EmbeddedRecord, WindowRows, chunk_columns)
from mrl_dna.store.merge import MergeSummary, merge_stores
from mrl_dna.store.reader import ContigTable, EmbeddingStore, WindowTable
from mrl_dna.store.writer import (EmbeddingWriter, OutputLock, check_existing_output, check_hdf5_name, check_output_not_input,
                                  file_attributes, partial_path)

__all__ = ["COMPARABLE_KEYS", "DTYPES", "FORMAT", "FORMAT_VERSION", "INPUT_KEYS", "MERGE_KEYS", "RESUME_KEYS", "ROWS_PER_CHUNK",
           "STATUS_CODES", "STATUS_NAMES", "ContigRows", "ContigTable", "EmbeddedRecord", "EmbeddingStore", "WindowRows", "EmbeddingWriter", "ExportFormat", "ExportSummary", "MergeSummary",
           "OutputLock", "WindowTable", "check_comparable", "check_distinct", "chunk_columns", "check_existing_output", "check_hdf5_name", "check_output_not_input",
           "export_store", "file_attributes", "merge_stores", "partial_path", "same_file"]
