"""Search Matryoshka embeddings, one module per job:

    exact.py     exact blocked top-k over normalised prefixes; rerank of candidate rows
    funnel.py    funnel stages: parse, check, the default and the calibrated funnel, plan_stages (which
                 stages a search runs, and why), funnel_search
    database.py  embedding files of one model as one (n, D) matrix: their records, or every saved window
    index.py     the optional FAISS shortlist index (`mrl-dna index`)
    api.py       `search()` (what `mrl-dna search` does) and the TSV of hits
    targets.py   queries of several windows at --level windows: first pass by the plan, then every window of
                 each candidate target exactly (homology.contig_targets), one TargetHit per (query, target)


Funnel retrieval follows Kusupati et al., "Matryoshka Representation Learning" (NeurIPS 2022), section 4.3
"Adaptive Retrieval": shortlist with a small prefix over the whole database, then rerank the shortlist at
growing prefixes. The cosine at prefix width k is `normalize(q[:k]) . normalize(v[:k])` (DESIGN.md).
Deviation: the paper shortlists with an HNSW index; here the first stage is an exact blocked scan over the
prefix columns (or a FAISS index on that prefix when `mrl-dna index` wrote one), so a funnel whose first
stage keeps every row and whose last stage is the full width is exactly the exact search.

Axis letters used in shape comments:
    q  queries            n  DB rows (all files)       b  rows in one block
    k  prefix width       m  candidates kept per query  t  hits per query (-k)
    u  distinct candidate rows of a query chunk        w  windows of one target record

Multiply-adds ("macs") count the dot products of scoring only, as the paper does: a scan of n rows at
width k costs n*k per query, a rerank of m candidates at width k costs m*k.
"""

from mrl_dna.search.api import Queries, SearchResult, WindowHits, load_queries, search, tsv_lines
from mrl_dna.search.database import ArrayPart, Database, Level, WindowPart, check_dim
from mrl_dna.search.exact import Hits, block_rows_for, exact_search, rerank
from mrl_dna.search.funnel import (Calibration, Mode, Plan, Stage, calibrate_funnel, check_funnel, default_funnel, funnel_search,
                                   parse_funnel, plan_stages)
from mrl_dna.search.index import IndexInfo, IndexKind, build_index, find_index
from mrl_dna.search.targets import QueryWindows, TargetHit, default_query_stride, search_targets

__all__ = ["ArrayPart", "Calibration", "Database", "Hits", "IndexInfo", "IndexKind", "Level", "Mode", "Plan", "Queries", "QueryWindows",
           "SearchResult", "Stage", "TargetHit", "WindowHits", "WindowPart", "block_rows_for", "build_index", "calibrate_funnel", "check_dim", "check_funnel", "default_funnel",
           "default_query_stride", "exact_search", "find_index", "funnel_search", "load_queries", "parse_funnel", "plan_stages", "rerank", "search", "search_targets", "tsv_lines"]
