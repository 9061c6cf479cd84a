import csv, time, numpy as np
from pathlib import Path
from mrl_dna import evaluate as ev
from mrl_dna.kmer import kmer_counts
DATA = Path('/work/shared/data')
rows = list(csv.DictReader(open(DATA/'MANIFEST.tsv'), delimiter='\t'))
groups = dict(l.rstrip('\n').split('\t') for l in open('/work/main/scripts/default_groups.tsv') if not l.startswith('#') and not l.startswith('file\t'))
files = [DATA/r['file'] for r in rows if int(r['bp']) >= 100000 and not r['file'].startswith('small/Ssonnei')]
W=2048
genomes = ev.load_genomes(files, species={f.name: groups[f.name] for f in files})
KS=(5,6)
def feats(seqs): return {k: np.stack([kmer_counts(s,k) for s in seqs]).astype(np.uint16) for k in KS}
out={}
t=time.time()
for gi,g in enumerate(genomes):
    tiles=[r[s:s+W] for r in g.records for s in range(0, max(len(r)-W,0)+1, W) if len(r)>=W]
    tiles=[x for x in tiles if (x!=11).mean()>0.9]
    for k,v in feats(tiles).items(): out[f'tile{k}_{gi}']=v
for tag,seed,per,divs in (('q',123,60,(0,0.05,0.1,0.2)),('t',7,100,(0.0,0.03,0.06,0.1,0.15,0.2))):
    cfg=ev.FragmentConfig(lengths=(2000,),divergences=divs,per_genome=per,seed=seed)
    fr=ev.make_fragments(genomes,cfg)
    for k,v in feats(fr.tokens).items(): out[f'{tag}{k}_x']=v
np.savez('/tmp/exp/cache2.npz',**out); print('done',time.time()-t)
