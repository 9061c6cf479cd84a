"""Comparing the rows of embedding files with each other, without a query: all-pairs distances (`mrl-dna
dist`) and clusters (`mrl-dna cluster`), in numpy (torch only for --device cuda).

    matrix.py   rows as normalised prefixes, the float64 products (numpy, or torch on a GPU), --threads
    dist.py     cosine similarity + angular distance of all pairs: long TSV, square TSV, PHYLIP; blocked
    cluster.py  leader clustering at a cosine cut-off (dereplication), spherical K-means (binning)
    text.py     numbers and ids formatted into bytes by numpy (10^8 lines of dist output)
"""

from mrl_dna.compare.cluster import ClusterMethod, Clusters, ClusterSummary, KMeansConfig, cluster, cluster_lines, size_summary
from mrl_dna.compare.dist import DistFormat, DistSummary, angular_distance, dist
from mrl_dna.compare.matrix import compute_device, load_vectors, set_blas_threads

__all__ = ["ClusterMethod", "ClusterSummary", "Clusters", "DistFormat", "DistSummary", "KMeansConfig", "angular_distance",
           "cluster", "cluster_lines", "compute_device", "dist", "load_vectors", "set_blas_threads", "size_summary"]
