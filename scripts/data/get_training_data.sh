#!/usr/bin/env bash
# Fetch the v2 training corpus: Debian's metaphlan2-data (MetaPhlAn2 marker genes, expat licence), grouped into
# genomes, genomes like the held-out ones removed by sequence, validation genomes split off.
#
# usage: scripts/data/get_training_data.sh [OUT_DIR] [HELDOUT_DATA_DIR]
#   OUT_DIR           where the corpus goes                                  [default data/corpus]
#   HELDOUT_DATA_DIR  genomes that must stay out of training: every FASTA under it (the benchmarks' genomes)
#                                                                            [default ../shared/data]
# Writes OUT_DIR/cache/ (the .deb and markers.fasta, reused on a rerun) and OUT_DIR/v2/ (train.fa, val/*.fa,
# genomes.tsv, corpus.json: see mrl_dna/train/corpus.py). Deterministic; rerunning with the corpus present does
# nothing. Needs ~1 GB of disk, a few minutes, and Debian's package registry (apt-get download, no root needed
# for the download itself).
set -euo pipefail

OUT=${1:-data/corpus}
HELDOUT=${2:-../shared/data}
PKG=metaphlan2-data
VERSION=2.6.0+ds-4  # the version the shipped default model was trained on
CACHE=$OUT/cache
CORPUS=$OUT/v2

die() { echo "get_training_data.sh: $*" >&2; exit 1; }

if [[ -f "$CORPUS/corpus.json" ]]; then
    echo "get_training_data.sh: $CORPUS is already built (delete it to rebuild)" >&2
    exit 0
fi
[[ -d "$HELDOUT" ]] || die "held-out data directory $HELDOUT not found; give it as the second argument"
mapfile -t HELD < <(find "$HELDOUT" -type f \( -name '*.fa' -o -name '*.fa.gz' -o -name '*.fasta' -o -name '*.fasta.gz' -o -name '*.fna' -o -name '*.fna.gz' \) | sort)
[[ ${#HELD[@]} -gt 0 ]] || die "no FASTA file under $HELDOUT; the held-out genomes are needed to keep them out of training"

mkdir -p "$CACHE"
MARKERS=$CACHE/var/lib/metaphlan2-data/markers.fasta
if [[ ! -f "$MARKERS" ]]; then
    command -v apt-get >/dev/null || die "apt-get not found: on a non-Debian machine, download ${PKG}_${VERSION}_all.deb from a Debian mirror into $CACHE and rerun"
    command -v dpkg >/dev/null || die "dpkg not found: needed to unpack the .deb (or unpack it with 'ar x' + 'tar' into $CACHE)"
    DEB=$(ls "$CACHE"/${PKG}_*_all.deb 2>/dev/null | head -n 1 || true)
    if [[ -z "$DEB" ]]; then
        echo "get_training_data.sh: downloading $PKG (204 MB) from Debian's package registry" >&2
        (cd "$CACHE" && apt-get download "$PKG=$VERSION" 2>/dev/null || apt-get download "$PKG") \
            || die "cannot download $PKG: check that Debian's package registry is reachable (apt-get update) or put the .deb in $CACHE"
        DEB=$(ls "$CACHE"/${PKG}_*_all.deb | head -n 1)
    fi
    echo "get_training_data.sh: unpacking $DEB" >&2
    dpkg -x "$DEB" "$CACHE" || die "cannot unpack $DEB (corrupt download? delete it and rerun)"
    [[ -f "$MARKERS" ]] || die "$DEB holds no var/lib/metaphlan2-data/markers.fasta; is it the right package?"
fi

python3 -m mrl_dna.train.corpus "$MARKERS" "$CORPUS" --heldout "${HELD[@]}"
echo "get_training_data.sh: corpus ready in $CORPUS (train: $CORPUS/train.fa, validation: $CORPUS/val/)" >&2
