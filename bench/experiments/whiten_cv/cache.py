import sys, csv, time, numpy as np, torch
from pathlib import Path
from mrl_dna import evaluate as ev
from mrl_dna.model import load_model
torch.set_num_threads(2)
DATA = Path('/work/shared/data')
rows = list(csv.DictReader(open(DATA/'MANIFEST.tsv'), delimiter='\t'))
groups = dict(l.rstrip('\n').split('\t') for l in open('/work/main/scripts/default_groups.tsv') if not l.startswith('#') and not l.startswith('file\t'))
files = [DATA/r['file'] for r in rows if int(r['bp']) >= 100000 and not r['file'].startswith('small/Ssonnei')]
model = load_model(None)
W = 2048
@torch.inference_mode()
def feats(seqs, bs=64):
    out=[]
    for i in range(0,len(seqs),bs):
        ch=seqs[i:i+bs]; L=max(len(s) for s in ch)
        tok=np.full((len(ch),L),4,dtype=np.int64)
        for j,s in enumerate(ch): tok[j,:len(s)]=s
        out.append(model.window_vectors(torch.from_numpy(tok), torch.tensor([len(s) for s in ch])).numpy())
    return np.concatenate(out)
genomes = ev.load_genomes(files, species={f.name: groups[f.name] for f in files})
out = {}
t=time.time()
for gi,g in enumerate(genomes):
    tiles=[r[s:s+W] for r in g.records for s in range(0, max(len(r)-W,0)+1, W) if len(r)>=W]
    tiles=[x for x in tiles if (x!=11).mean()>0.9]
    out[f'tile_{gi}']=feats(tiles).astype(np.float32)
    print(gi,g.name,g.species,len(tiles),f'{time.time()-t:.0f}s',flush=True)
for tag,seed,per,divs in (('q',123,60,(0,0.05,0.1,0.2)),('t',7,100,(0.0,0.03,0.06,0.1,0.15,0.2))):
    cfg=ev.FragmentConfig(lengths=(2000,),divergences=divs,per_genome=per,seed=seed)
    fr=ev.make_fragments(genomes,cfg)
    out[f'{tag}_x']=feats(fr.tokens).astype(np.float32); out[f'{tag}_g']=fr.genome; out[f'{tag}_d']=fr.divergence; out[f'{tag}_start']=fr.start
    print(tag,len(fr),f'{time.time()-t:.0f}s',flush=True)
out['names']=np.array([g.name for g in genomes]); out['species']=np.array([g.species for g in genomes])
np.savez('/tmp/exp/cache.npz',**out)
print('done',time.time()-t)
