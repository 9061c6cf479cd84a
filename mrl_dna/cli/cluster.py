"""mrl-dna cluster: clusters of the rows of an embedding file (dereplication at a cosine cut-off, or K-means
binning); TSV id -> cluster on stdout, cluster sizes on stderr.

Example (six genomes of ../shared/data embedded with `embed --per-file`; README, "Genome collections"):

    $ mrl-dna cluster genomes.h5 --min-sim 0.99 --dim 64
    #id	cluster	representative	similarity
    Blochmannia_pennsylvanicus_BPEN	0	Blochmannia_pennsylvanicus_BPEN	1.000000
    Blochmannia_pennsylvanicus_BPenn7	0	Blochmannia_pennsylvanicus_BPEN	0.999980
    Blochmannia_chromaiodes_640	0	Blochmannia_pennsylvanicus_BPEN	0.999861
    Blochmannia_floridanus	2	Blochmannia_floridanus	1.000000
    Shew_baltica_OS185_first500k	1	Shew_baltica_OS185_first500k	1.000000
    Shew_baltica_OS223_first500k	1	Shew_baltica_OS185_first500k	0.998662
    mrl-dna: 3 clusters of 6 rows; sizes 3, 2, 1

Columns: id; cluster (0 = the largest; ties: the cluster whose first row comes first); representative (leader:
the row that founded the cluster, the longest of them; kmeans: the member closest to the centroid);
similarity: the cosine to that representative (what `dist` prints for the pair; 1 for the representative
itself), with both methods. Rows in file order.

Methods: leader (the default with --min-sim): rows visited longest first (ties: file order), each joins the
most similar representative so far if the cosine is >= --min-sim, else founds a cluster (CD-HIT's greedy
scheme; every member is within the cut-off of a real sequence, no chaining). kmeans (--n-clusters K):
spherical K-means (cosine), k-means++ seeding from --seed, best of --n-init runs. Deterministic: the same
input, options and seed give the same clusters, whatever --threads.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mrl_dna import console
from mrl_dna.cli.options import (blas_threads_option, dim_option, embedding_file_argument, force_option, min_sim_option,
                                 model_option, no_header_option, products_device_option, quiet_option, refuse_options,
                                 text_output_option)
from mrl_dna.compare import ClusterMethod, KMeansConfig, cluster, cluster_lines, compute_device, set_blas_threads, size_summary
from mrl_dna.compare.windows import MIN_AF, CompareLevel, WindowLevel, window_cluster_lines, window_clusters
from mrl_dna.errors import OptionError
from mrl_dna.store.textout import text_output


def command(
    db: Path = embedding_file_argument("DB.h5"),
    method: ClusterMethod | None = typer.Option(None, "--method", help="leader: dereplication at --min-sim; kmeans: binning into --n-clusters. Default: leader with --min-sim, kmeans with --n-clusters."),
    min_sim: float | None = min_sim_option("leader: the cosine a member has with its representative at least (e.g. 0.95)."),
    n_clusters: int | None = typer.Option(None, "--n-clusters", min=1, help="kmeans: the number of clusters K."),
    dim: int | None = dim_option(),
    seed: int = typer.Option(KMeansConfig.seed, "--seed", help="kmeans: seed of the k-means++ starts."),
    n_init: int = typer.Option(KMeansConfig.n_init, "--n-init", min=1, help="kmeans: runs from different starts; the best (smallest sum of 1 - cosine to the centroids) is kept."),
    output: Path | None = text_output_option(),
    force: bool = force_option("an existing OUTPUT"),
    no_header: bool = no_header_option("#id..."),
    threads: int = blas_threads_option(),
    device: str = products_device_option(),
    quiet: bool = quiet_option("No cluster sizes or summary on stderr (warnings and errors still print)."),
    level: CompareLevel = typer.Option(CompareLevel.records, "--level", help="records: the pooled vectors (cosine); windows: species-level dereplication by ANI from the saved windows (embed --save-windows), with --min-ani."),
    min_ani: float | None = typer.Option(None, "--min-ani", min=0.0, max=100.0, help="--level windows: the ANI (percent) a member has with its representative at least (e.g. 95: species)."),
    min_af: float = typer.Option(MIN_AF, "--min-af", min=0.0, max=1.0, help="--level windows: an ANI counts only when the pair shares at least this fraction of one genome."),
    model: Path | None = model_option("--level windows: the model directory whose calibration.json maps window scores to identity (default: as dist --level windows)."),
) -> None:
    """Cluster the rows of an embedding file: dereplication at a cosine cut-off or K-means binning.

    --min-sim S: greedy leader clustering, longest row first (each joins the most similar representative
    so far if the cosine is >= S, else founds a cluster); --n-clusters K: spherical K-means (--seed).

    \b
    Example (genomes embedded with embed --per-file):
      $ mrl-dna cluster genomes.h5 --min-sim 0.99 --dim 64 | head -3
      #id	cluster	representative	similarity
      Blochmannia_pennsylvanicus_BPEN	0	Blochmannia_pennsylvanicus_BPEN	1.000000
      Blochmannia_pennsylvanicus_BPenn7	0	Blochmannia_pennsylvanicus_BPEN	0.999980

    Example: mrl-dna cluster genomes.h5 --min-sim 0.99 --dim 64 > clusters.tsv

    Example: mrl-dna cluster contigs.h5 --n-clusters 40 --seed 1 -o bins.tsv

    \b
    --level windows --min-ani 95: species-level dereplication (genomes embedded with --save-windows). Greedy
    leader clustering, longest genome first, each joining the representative of highest ANI >= --min-ani
    (dist --level windows' ANI), else founding a cluster: every member is within the cut-off of a real genome,
    and no chaining through intermediate strains as with single linkage. Columns: id, cluster,
    representative, ani (percent, to the representative). Pairs are screened by the pooled vectors as in dist.
    Example: mrl-dna cluster genomes.h5 --level windows --min-ani 95 > species.tsv
    """
    console.set_quiet(quiet)
    timer = console.Timer()
    set_blas_threads(threads)
    if level is CompareLevel.windows:
        refuse_options("applies to --level records only; cluster --level windows takes --min-ani",
                       min_sim=min_sim is not None, n_clusters=n_clusters is not None, method=method is not None,
                       dim=dim is not None)
        if min_ani is None:
            raise OptionError("cluster --level windows needs --min-ani (e.g. 95 for species)")
        dev = compute_device(device)
        with WindowLevel(db, model_dir=model, device=dev) as lv, \
                text_output(output, inputs=[db], force=force, example="clusters.tsv") as out:
            clusters, compared = window_clusters(lv, min_ani=min_ani, min_af=min_af)
            out.write("".join(window_cluster_lines(clusters, header=not no_header)).encode())
        console.info(f"mrl-dna: {console.count(len(clusters.sizes), 'cluster')} of {console.count(len(clusters.ids), 'genome')}; "
                     f"sizes {size_summary(clusters.sizes)}")
        console.footer(f"leader at ANI >= {min_ani} ({console.count(compared, 'pair')} compared by windows) on {dev}", timer)
        return
    refuse_options("applies to --level windows only; add --level windows or drop it", min_ani=min_ani is not None,
                   min_af=min_af != MIN_AF, model=model is not None)
    if method is None:
        method = ClusterMethod.kmeans if n_clusters is not None else ClusterMethod.leader
    with text_output(output, inputs=[db], force=force, example="clusters.tsv") as out:
        clusters, s = cluster(db, method=method, dim=dim, min_sim=min_sim, n_clusters=n_clusters,
                              kmeans=KMeansConfig(n_init=n_init, seed=seed), device=device, warn=console.warn)
        out.write("".join(cluster_lines(clusters, header=not no_header)).encode())
    how = f"cosine >= {min_sim}" if s.method == "leader" else (
        f"K = {n_clusters}, seed {seed}, best of {n_init}: {s.iterations} iterations, sum of 1 - cosine to the centroids {s.objective:.4f}")
    console.info(f"mrl-dna: {console.count(s.n_clusters, 'cluster')} of {console.count(s.n, 'row')}; sizes "
                 f"{size_summary(clusters.sizes)}")
    console.footer(f"{s.method} at dim {s.dim} ({how}) on {s.device}", timer)
