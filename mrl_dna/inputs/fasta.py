"""Streaming FASTA reader: plain, gzip and bgzip files, several at once, '-' for stdin; GenBank and EMBL too.

What it accepts (and decides), so that the rest of mrl-dna sees only clean token ids:
- Compression is detected from the first bytes (gzip magic 1f 8b; bgzip is gzip), never from the file
  name. bzip2, xz, zstd and zip are named in a clear error with the command that converts them.
- LF and CRLF line ends; any line width, from one line per record to many short lines.
- Upper and lower case are the same; IUPAC ambiguity codes become N; U becomes T (`mrl_dna.dna.encode`).
- Spaces and tabs inside sequence lines are ignored (some tools pad or split columns); one '*' at the very
  end of a record (an old end-of-sequence mark) is dropped. Any other character (digits, gaps '-' and '.',
  protein letters, '*' elsewhere, binary bytes) is an InputError that names the file, line, record and
  1-based position in the record, and suggests the fix.
- Headers: the id is the first word after '>', the description is the rest of the line. '>' with no id,
  and an id seen before (in any of the inputs) are errors.
- A record with no sequence (a header line followed by another header or the end of the file) is yielded
  with zero tokens: the caller reports and records it. A file with no record at all is an error.
- GenBank and EMBL flat files (also gzip/bgzip) are recognised by their first line ('LOCUS ' / 'ID   ') and
  read with biopython, one record per locus: id = the accession.version (the LOCUS/ID name when there is
  none), description = DEFINITION/DE, sequence = ORIGIN/SQ, checked like FASTA's (messages name the file,
  record and position; biopython gives no line numbers). A record without a sequence (a CONTIG-only or
  annotation-only GenBank) is an error that says which download has the sequence.

Memory: the file is read in 1 MiB blocks and only the current record is held (its raw text, then its
clean bytes and tokens), so memory grows with the largest record, never with the file.

`record_lengths` reads an up-to-date .fai beside a plain FASTA instead of the file when there is one.
Stdin ('-') and any other input that can be read only once (a named pipe, a shell's `<(...)`: `is_stream`)
are read in one pass; `record_lengths` refuses them instead of consuming them (issue 22: a first pass over a
named pipe left the real one waiting for a writer forever).
(Random access by region, `embed --regions BED`, is issue 15's: it will use pyfaidx, a dependency already.)
"""

from __future__ import annotations

import gzip
import io
import os
import re
import stat
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrl_dna import dna
from mrl_dna.console import warn
from mrl_dna.errors import InputError

# Read size: large enough that Python's per-block overhead is negligible, small next to any record.
_BLOCK = 1 << 20
# A header line is text; one longer than this is a file that is not FASTA (and would otherwise be held whole).
_MAX_HEADER = 1 << 20
# Bytes ignored inside sequence lines: line ends (LF, CR of CRLF), spaces, tabs, form feeds.
_WHITESPACE = b" \t\r\n\v\f"
_NL = b"\n"
_IS_WHITESPACE = np.zeros(256, dtype=bool)
_IS_WHITESPACE[list(_WHITESPACE)] = True
# Bytes that never occur in a text file (all controls but whitespace, plus DEL).
_BINARY = bytes(b for b in range(32) if b not in _WHITESPACE) + b"\x7f"
# Control bytes that may not occur in a header line (tabs may).
_HEADER_BINARY = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# Every byte that `dna.encode` turns into a valid id: deleting them leaves nothing when a sequence is clean.
_DNA_BYTES = bytes(np.flatnonzero(dna.ENCODE_TABLE != dna.INVALID).astype(np.uint8))
_UTF8_BOM = b"\xef\xbb\xbf"

_GZIP_MAGIC = b"\x1f\x8b"
_OTHER_FORMATS = (  # (magic, what it is, how to get a plain or gzip FASTA)
    (b"BZh", "bzip2-compressed", "decompress it with `bunzip2 -k` or re-compress it with gzip/bgzip"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it with `xz -dk` or re-compress it with gzip/bgzip"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it with `zstd -d` or re-compress it with gzip/bgzip"),
    (b"PK\x03\x04", "a zip archive", "unzip it and pass the FASTA files inside"),
)


@dataclass(frozen=True, eq=False)  # eq=False: holds an array, and == on arrays is not a bool
class Record:
    """One FASTA record."""

    id: str  # first word of the header
    description: str  # rest of the header line
    tokens: np.ndarray  # uint8 Caduceus ids, length = record length in bp (0 for an empty record)
    source: str  # the file it came from ('-' for stdin)

    def __len__(self) -> int:
        return len(self.tokens)


def read_fasta(paths: Sequence[str | Path] | str | Path, *, check_duplicates: bool = True) -> Iterator[Record]:
    """Records of the FASTA files `paths`, in order, one at a time. '-' reads stdin.

    A single path is accepted as well as a list. Raises InputError (one line: file, line, record, position,
    fix) for anything that is not a clean DNA FASTA; see the module docstring for what is accepted.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    first_seen: dict[str, tuple[str, int | None]] = {}  # id -> (file, line) where it was first seen
    for path in paths:
        source, name = str(path), _display(path)
        for rid, description, body, line in _raw_records(path):
            if check_duplicates:
                _check_unique(rid, name, line, first_seen)
            tokens = dna.encode(_clean(body, name, rid, line))  # type: ignore[arg-type]  # bytearray works
            del body  # hold one record's raw text at a time, not two
            yield Record(id=rid, description=description, tokens=tokens, source=source)


def is_stream(path: str | Path) -> bool:
    """Whether an input can be read only once: '-' (stdin), or a path that exists and is neither a regular
    file nor a directory (a named pipe, the /dev/fd/N of a shell's `<(...)`, /dev/stdin, a socket). Such an
    input is read in one pass, as stdin is: never measured first."""
    if str(path) == "-":
        return True
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def stream_name(path: str | Path) -> str:
    """How messages name an input that can be read only once: "stdin '-'" or "PATH (a pipe)"."""
    return "stdin '-'" if str(path) == "-" else f"{path} (a pipe)"


def record_lengths(paths: Sequence[str | Path] | str | Path, *, check: bool = True) -> list[tuple[str, int]]:
    """(id, length in bp) of every record, in file order: from a .fai beside a plain (uncompressed) file when
    the index matches the file (`_read_fai` checks every record's place in it), else from one streaming
    pass. That pass builds no tokens but (unless check=False) raises the same InputErrors as read_fasta,
    duplicate ids included, so a caller can refuse bad input before writing. With a matching .fai the
    sequence letters are not checked here (read_fasta still checks them as it reads)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[tuple[str, int]] = []
    first_seen: dict[str, tuple[str, int | None]] = {}  # id -> (file, line) where it was first seen
    for path in paths:
        if is_stream(path):
            raise InputError(f"cannot measure records on {stream_name(path)} without consuming it; this needs FASTA "
                             "files, not a pipe: save it to a file and pass that")
        from_fai = _read_fai(Path(path))
        if from_fai is not None:
            out.extend(from_fai)
            continue
        name = _display(path)
        for rid, _, body, line in _raw_records(path):
            if check:
                _check_unique(rid, name, line, first_seen)
                seq = _clean(body, name, rid, line)
            else:
                seq = body.translate(None, _WHITESPACE)
                seq = seq[:-1] if seq.endswith(b"*") else seq
            out.append((rid, len(seq)))
            del body, seq  # hold one record at a time
    return out


# ---------------------------------------------------------------------------------------------- parsing


def _raw_records(path: str | Path) -> Iterator[tuple[str, str, bytearray, int | None]]:
    """(id, description, raw sequence text with line ends, 1-based line of the header) per record; for
    GenBank/EMBL (no line numbers) the sequence text and None."""
    with _open_binary(path) as (read, name):
        head = read(_BLOCK)
        flat = _flat_file_format(head)
        read = _pushed_back(head, read)
        if flat:
            yield from _flat_file_records(read, name, flat)
        else:
            yield from _fasta_records(read, name)


def _flat_file_format(head: bytes) -> str | None:
    """'genbank' or 'embl' when the text starts (after blank lines or a BOM) like one, else None (FASTA)."""
    text = head[len(_UTF8_BOM):] if head.startswith(_UTF8_BOM) else head
    text = text.lstrip(_WHITESPACE)
    if text.startswith(b"LOCUS "):
        return "genbank"
    if text.startswith(b"ID   "):
        return "embl"
    return None


def _pushed_back(head: bytes, read: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """read(n) that returns `head` (already read to detect the format) first."""
    pending = [head]

    def read_again(n: int) -> bytes:
        if pending:
            return pending.pop()
        return read(n)

    return read_again


class _ReadAsRaw(io.RawIOBase):
    """A raw binary stream over read(n), so that biopython gets a text handle on decompressed input."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read, self._rest = read, b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._rest or self._read(max(len(b), _BLOCK))
        n = min(len(b), len(data))
        b[:n] = data[:n]
        self._rest = data[n:]
        return n


_FLAT_NAMES = {"genbank": "GenBank", "embl": "EMBL"}


def _flat_file_records(read: Callable[[int], bytes], name: str, fmt: str) -> Iterator[tuple[str, str, bytearray, None]]:
    """GenBank/EMBL records through biopython: (id, description, sequence bytes, None) per locus."""
    from Bio import SeqIO  # a dependency (pyfaidx needs it for gzip too); loaded only for these files
    from Bio.Seq import UndefinedSequenceError

    what = _FLAT_NAMES[fmt]
    handle = io.TextIOWrapper(io.BufferedReader(_ReadAsRaw(read), _BLOCK), encoding="latin-1", newline=None)
    records, n = SeqIO.parse(handle, fmt), 0
    while True:
        # biopython's warnings (a malformed LOCUS line, a length that disagrees with the sequence) become one
        # line each on stderr, caught per record so that no other code's warnings are touched between yields
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                rec = next(records, None)
            except ValueError as e:  # biopython's parse errors
                raise InputError(f"file {name} starts like a {what} file but cannot be read as one ({e}); check "
                                 "that it is complete, or convert it to FASTA") from None
        for w in caught:
            warn(f"{name}: {str(w.message).strip()}")
        if rec is None:
            break
        n += 1
        rid = rec.id if rec.id and rec.id != "<unknown id>" else rec.name
        if not rid or rid == "<unknown name>":
            raise InputError(f"file {name}, {what} record {n} has no accession or locus name; name it in its "
                             f"{'LOCUS' if fmt == 'genbank' else 'ID'} line")
        try:
            seq = bytes(rec.seq)
        except UndefinedSequenceError:
            raise InputError(
                f"file {name}, {what} record '{rid}' has no sequence (annotation or CONTIG only); download the "
                "full record with its sequence (NCBI: 'GenBank (full)', rettype=gbwithparts) or a FASTA"
            ) from None
        description = rec.description if rec.description not in ("", "<unknown description>", ".") else ""
        yield rid, description.rstrip("."), bytearray(seq), None
    if n == 0:
        raise InputError(f"no {what} records in {name}; give a FASTA, GenBank or EMBL file")


def _fasta_records(read: Callable[[int], bytes], name: str) -> Iterator[tuple[str, str, bytearray, int]]:
    """The FASTA parser: (id, description, raw sequence text, header line) per record."""
    n_records = 0
    seen_bytes = False  # whether the file had any byte at all (to word the "no records" error)
    header: tuple[str, str, int] | None = None  # (id, description, line) of the record being read
    body = bytearray()  # raw text after the current header (before the first header: blank lines only)
    line = 1  # line number where `body` starts
    pending = b""  # an incomplete header line carried to the next block
    at_line_start = True  # whether the next unread byte starts a line
    eof, first_block = False, True
    while not eof:
        block = read(_BLOCK)
        eof = not block
        if first_block:  # a UTF-8 byte order mark (written by some Windows editors) is not data
            while block and len(block) < len(_UTF8_BOM) and _UTF8_BOM.startswith(block):
                more = read(_BLOCK)
                block, eof = block + more, not more
                if eof:
                    break
            block = block[len(_UTF8_BOM) :] if block.startswith(_UTF8_BOM) else block
            first_block = False
        seen_bytes = seen_bytes or bool(block)
        buf = pending + block if pending else block
        pending = b""
        pos = 0
        while pos < len(buf):
            if at_line_start and buf[pos] == 0x3E:  # '>' at a line start: a header
                header_line = line + body.count(_NL)
                nl = buf.find(_NL, pos)
                if nl < 0 and not eof:  # the header goes on in the next block
                    if len(buf) - pos > _MAX_HEADER:
                        raise InputError(
                            f"file {name}, line {header_line}: a header line longer than {_MAX_HEADER} bytes; "
                            "this is not a FASTA file"
                        )
                    pending = buf[pos:]
                    break
                end = len(buf) if nl < 0 else nl
                if header is not None:
                    yield header[0], header[1], body, header[2]
                    n_records += 1
                header = (*_parse_header(buf[pos:end], name, header_line), header_line)
                body, line = bytearray(), header_line + 1
                pos, at_line_start = end + 1, True
            else:  # sequence text up to the next header (or the end of the block)
                nxt = buf.find(b"\n>", pos)
                end = len(buf) if nxt < 0 else nxt + 1
                body += memoryview(buf)[pos:end]
                pos, at_line_start = end, buf[end - 1] == 0x0A
                if header is None:  # before any header: fail now, never hold a file that is not FASTA
                    _check_before_first_header(body, name, line)
                    if at_line_start:  # only blank lines so far: count them, keep nothing
                        line += body.count(_NL)
                        body.clear()
    if header is not None:
        yield header[0], header[1], body, header[2]
        n_records += 1
    if n_records == 0:
        what = "it has only blank lines" if seen_bytes else "it is empty"
        raise InputError(f"no FASTA records in {name} ({what}); give a FASTA file with '>id' header lines")


def _parse_header(raw: bytes, name: str, line: int) -> tuple[str, str]:
    """'>id description' -> (id, description)."""
    raw = raw[1:].rstrip(b"\r")
    where = f"file {name}, line {line}"
    if b"\r" in raw:
        raise InputError(f"{where}: the file uses old Mac line ends (CR only); convert it with `mac2unix`")
    found = _HEADER_BINARY.search(raw)
    if found:
        raise InputError(
            f"{where}: the header holds binary data (byte 0x{raw[found.start()]:02x}); this is not a FASTA text file"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        # text in another encoding (Latin-1 from an old tool or a Windows editor): say so, and how to convert
        guess = raw[e.start : e.start + 1].decode("latin-1")
        fix = (f"zcat {name} | iconv -f latin1 -t utf8 > fixed.fa" if _is_gzip(name)
               else f"iconv -f latin1 -t utf8 {name} > fixed.fa") if name != "stdin" else "iconv -f latin1 -t utf8"
        raise InputError(
            f"{where}: the header is not UTF-8 text (byte 0x{raw[e.start]:02x}, {guess!r} in Latin-1, at column "
            f"{e.start + 2}); convert the file to UTF-8, e.g. `{fix}`"
        ) from None
    parts = text.split(None, 1)
    if not parts:
        raise InputError(f"{where}: '>' with no id; name every record right after '>', e.g. '>seq1'")
    return parts[0], parts[1].rstrip() if len(parts) > 1 else ""


def _check_before_first_header(body: bytearray, name: str, line: int) -> None:
    """Only blank lines may come before the first '>' header."""
    text = body.translate(None, _WHITESPACE)
    if not text:
        return
    i = np.flatnonzero(~_IS_WHITESPACE[np.frombuffer(body, dtype=np.uint8)])[0]  # first non-blank byte
    where = f"file {name}, line {line + body.count(_NL, 0, i)}"
    byte = body[i]
    if byte >= 128 or bytes([byte]) in _BINARY:
        raise InputError(
            f"{where}: binary data (byte 0x{byte:02x}) where a '>' header should be; this is not a FASTA file "
            "(give a plain, gzip or bgzip FASTA)"
        )
    first = bytes(body[i : i + 40]).split(b"\n")[0].decode("ascii", "replace").rstrip()
    hint = "; this looks like FASTQ: convert it with `seqtk seq -a`" if text[:1] == b"@" else ""
    raise InputError(
        f"{where}: text before the first '>' header ({first!r}); this is not a FASTA file "
        f"(every record starts with a '>id' line){hint}"
    )


def _check_unique(rid: str, name: str, line: int | None, first_seen: dict[str, tuple[str, int | None]]) -> None:
    if rid in first_seen:
        where, where_line = first_seen[rid]
        fix = "rename one of the records"
        if where != name:  # two files that both name a contig `contig_1`: typically two assemblies
            fix += " (or, for one vector per file as for genomes of many contigs, embed with --per-file)"
        raise InputError(
            f"duplicate id '{rid}' in {_at(name, line)} (first seen in {_at(where, where_line)}); "
            f"ids must be unique: {fix}"
        )
    first_seen[rid] = (name, line)


def _at(name: str, line: int | None) -> str:
    return name if line is None else f"{name} line {line}"


def _clean(body: bytearray, name: str, rid: str, line: int | None) -> bytearray:
    """Raw sequence text of one record -> its bases (no blanks, no final '*'), or InputError at the first
    character that is not DNA/IUPAC."""
    seq = body.translate(None, _WHITESPACE)
    if seq.endswith(b"*"):  # an end-of-sequence mark, not a base
        del seq[-1:]
    if not seq.translate(None, _DNA_BYTES):  # all DNA: one C pass, cheaper than numpy for short records
        return seq
    bad = dna.first_invalid(dna.encode(seq))  # type: ignore[arg-type]
    raw_index = np.flatnonzero(~_IS_WHITESPACE[np.frombuffer(body, dtype=np.uint8)])[bad]
    where = f"file {name}" if line is None else f"file {name}, line {line + 1 + body.count(_NL, 0, raw_index)}"
    why = _why_not_dna(bytes(seq[bad : bad + 1]))
    raise InputError(f"{where}, record '{rid}', position {bad + 1}: {why}")


def _why_not_dna(ch: bytes) -> str:
    """The message for one character that is not a DNA/IUPAC base, with the most likely fix."""
    b = ch[0]
    if b >= 128 or ch in _BINARY:
        return f"byte 0x{b:02x} is not text; the file is binary or corrupt"
    shown = f"'{ch.decode('ascii')}'"
    if ch.isalpha():
        return f"{shown} is not a DNA base (A C G T U or IUPAC); is this a protein FASTA?"
    if ch in b"-.":
        return f"{shown} is an alignment gap, not a DNA base; remove gaps first (e.g. `seqkit seq -g`)"
    if ch.isdigit():
        return f"{shown} is a digit, not a DNA base; remove numbers and keep only the sequence letters"
    if ch == b"*":
        return f"{shown} inside a sequence is a stop codon, not a DNA base; is this a protein FASTA?"
    if ch == b">":
        return f"{shown} inside a sequence line; a '>' header must start its own line"
    return f"{shown} is not a DNA base (A C G T U or IUPAC); remove it"


# ------------------------------------------------------------------------------------------------- files


def _display(path: str | Path) -> str:
    """How messages name an input: its path as given, or 'stdin' for '-'."""
    return "stdin" if str(path) == "-" else str(path)


def _check_path(path: Path) -> None:
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a FASTA file; pass the FASTA files inside it")
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")


@contextmanager
def _open_binary(path: str | Path) -> Iterator[tuple[Callable[[int], bytes], str]]:
    """(read(n) -> bytes of decompressed FASTA text, display name). Every read error is an InputError."""
    name = _display(path)
    if str(path) == "-":
        raw, close = _stdin_binary(), False
    else:
        _check_path(Path(path))
        try:
            raw, close = open(path, "rb"), True  # noqa: SIM115 (closed below)
        except OSError as e:
            raise InputError(f"cannot open {name}: {e.strerror}; check its permissions") from e
    try:
        head = _read_some(raw, name, 6)
        for magic, what, fix in _OTHER_FORMATS:
            if head.startswith(magic):
                raise InputError(f"{name} is {what}; mrl-dna reads plain, gzip and bgzip FASTA: {fix}")
        stream = _Prefixed(head, raw)
        if head.startswith(_GZIP_MAGIC):
            gz = gzip.GzipFile(fileobj=stream, mode="rb")  # bgzip is a series of gzip members: read the same

            def read(n: int) -> bytes:
                try:
                    return gz.read(n)
                except (EOFError, zlib.error, gzip.BadGzipFile) as e:
                    raise InputError(f"{name} is truncated or corrupt gzip ({e}); re-download or re-compress it") from e
                except OSError as e:
                    raise InputError(f"cannot read {name}: {e}") from e

        else:

            def read(n: int) -> bytes:
                return _read_some(stream, name, n)

        yield read, name
    finally:
        if close:
            raw.close()


def _read_some(f: io.IOBase, name: str, n: int) -> bytes:
    try:
        return f.read(n)
    except OSError as e:
        raise InputError(f"cannot read {name}: {e}") from e


def _stdin_binary() -> io.IOBase:
    stdin = sys.stdin
    if stdin is None:
        raise InputError("'-' reads FASTA from stdin, but there is no stdin; pass a file instead")
    try:
        if stdin.isatty():
            raise InputError(
                "'-' reads FASTA from stdin, but stdin is a terminal; pipe a file in: cat x.fa | mrl-dna ..."
            )
    except (AttributeError, ValueError):
        pass
    buffer = getattr(stdin, "buffer", None)
    if buffer is not None:
        return buffer
    if isinstance(stdin, io.TextIOBase):  # a text stream without a byte buffer (e.g. io.StringIO in tests)
        return _TextAsBytes(stdin)
    return stdin  # already binary


class _TextAsBytes:
    """read(n) of a text stream as UTF-8 bytes, a block at a time (may return a few more than n bytes)."""

    def __init__(self, text: io.TextIOBase) -> None:
        self._text = text

    def read(self, n: int = -1) -> bytes:
        return self._text.read(n).encode("utf-8", "surrogateescape")


class _Prefixed(io.RawIOBase):
    """A read-only stream that returns `head` (bytes already read to detect the format), then `rest`."""

    def __init__(self, head: bytes, rest: io.IOBase) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                out, self._head = self._head + self._rest.read(), b""
                return out
            out, self._head = self._head[:n], self._head[n:]
            return out + self._rest.read(n - len(out)) if n > len(out) else out
        return self._rest.read(n)

    def readinto(self, b: bytearray) -> int:  # pragma: no cover - read() is what gzip and we call
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def checked_fai(path: str | Path) -> list[tuple[str, int]] | None:
    """(id, length) from the .fai beside a plain FASTA when it matches the file, else None (see _read_fai)."""
    return _read_fai(Path(path))


def _read_fai(path: Path) -> list[tuple[str, int]] | None:
    """(id, length) from a samtools/pyfaidx .fai beside a plain FASTA `path`, or None when there is none, it
    is unreadable, or it does not match the file: then the caller reads the file itself.

    A newer mtime proves nothing (a copy, `touch`, an index made before the file was appended to), so the
    index is checked against the file, one short read per record: record i's header line must start at
    the byte where record i-1's sequence ends (as computed from its length and line layout) and read '>id',
    and the last record must end at the end of the file. An index that leaves a record out, lists one
    that is not there, or has a wrong length or layout fails this. A .fai beside a gzip file is never used
    (its offsets point into the uncompressed text); the streaming pass reads such a file instead."""
    fai = Path(str(path) + ".fai")
    try:
        if not fai.is_file():
            return None
        rows = []
        for row in fai.read_text().splitlines():
            if row.strip():
                f = row.split("\t")
                rows.append((f[0], int(f[1]), int(f[2]), int(f[3]), int(f[4])))  # id, bp, offset, bases/line, bytes/line
        if not rows:
            return None
        with open(path, "rb") as fh:
            if _is_gzip_magic(fh.read(2)):
                return None
            size = os.fstat(fh.fileno()).st_size
            head = 0  # where the next header line must start
            for rid, bp, offset, line_bases, line_bytes in rows:
                fh.seek(head)
                header = fh.read(offset - head).lstrip(_WHITESPACE) if 0 <= offset - head <= _MAX_HEADER else b""
                words = header[1:].split(None, 1)  # blank lines before a header are allowed, as in read_fasta
                if not header.startswith(b">") or not header.endswith(b"\n") or not words or words[0].decode() != rid:
                    return _stale(fai, path, f"record {rid!r} is not at byte {head}")
                if bp and (line_bases < 1 or line_bytes < line_bases):
                    return _stale(fai, path, f"record {rid!r} has an impossible line layout")
                full, rest = divmod(bp, line_bases) if bp else (0, 0)
                end = offset + full * line_bytes + (rest + line_bytes - line_bases if rest else 0)  # its last line end
                head = end
            if head < size:  # only blank lines may follow the last record
                fh.seek(head)
                if size - head > _BLOCK or fh.read().translate(None, _WHITESPACE):
                    return _stale(fai, path, "the file has more records than it lists")
            elif head > size and not (bp and head == size + line_bytes - line_bases):  # (no final newline)
                return _stale(fai, path, "the file has fewer bases than it lists")
        return [(rid, bp) for rid, bp, *_ in rows]
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None  # an unusable index only costs a streaming pass


def _stale(fai: Path, path: Path, why: str) -> None:
    warn(f"ignoring {fai}: it does not match {path} ({why}); reading the file instead (rebuild the index with "
         f"`samtools faidx {path}` to skip this pass)")
    return None


def _is_gzip_magic(head: bytes) -> bool:
    return head.startswith(_GZIP_MAGIC)


def _is_gzip(name: str) -> bool:
    try:
        with open(name, "rb") as fh:
            return _is_gzip_magic(fh.read(2))
    except OSError:
        return False
