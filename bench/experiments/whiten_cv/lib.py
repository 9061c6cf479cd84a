import numpy as np, torch, torch.nn.functional as F
from safetensors.torch import load_file
C = np.load('/tmp/exp/cache.npz')
names = list(C['names']); species = list(C['species']); G = len(names)
tiles = [C[f'tile_{i}'] for i in range(G)]
HELD = {"Pectobacterium atrosepticum","Aquifex aeolicus","Corynebacterium pseudotuberculosis","Methanobacterium","Shewanella baltica","Akkermansia muciniphila","Blochmannia floridanus","Blochmannia vafer"}
def norm(x): return x/np.maximum(np.linalg.norm(x,axis=-1,keepdims=True),1e-12)
def evaluate(f, test_genomes, db_genomes, dims=(16,64,128), tag='q'):
    """f: (n,200)->(n,D) per-window map. DB = mean of f(tiles) per genome; queries = tag fragments of test genomes."""
    db = np.stack([f(tiles[g]).mean(0) for g in db_genomes])
    qm = np.isin(C[f'{tag}_g'], test_genomes)
    qx, qg, qd = C[f'{tag}_x'][qm], C[f'{tag}_g'][qm], C[f'{tag}_d'][qm]
    qy = f(qx)
    sp = np.array([species[g] for g in db_genomes]); truesp = np.array([species[g] for g in qg])
    res = {}
    D = qy.shape[1]
    for k in dims:
        if k > D: continue
        S = norm(qy[:, :k]) @ norm(db[:, :k]).T
        hit = sp[S.argmax(1)] == truesp
        res[k] = [100*hit[qd==d].mean() for d in sorted(set(qd))]
    return res
def fmt(res): return '  '.join(f'{k}:'+'/'.join(f'{v:.1f}' for v in vs) for k,vs in res.items())
W = {k: v.numpy() for k, v in load_file('/work/main/mrl_dna/default_model/model.safetensors').items()}
def shipped_head(x):
    h = x @ W['head.0.weight'].T + W['head.0.bias']
    h = 0.5*h*(1+np.vectorize(lambda t: t)(1)*0)  # placeholder
    t = torch.from_numpy(x @ W['head.0.weight'].T + W['head.0.bias'])
    return (F.gelu(t).numpy() @ W['head.2.weight'].T + W['head.2.bias'])
def kmer4(x): return x[:, 64:]
def kmer4raw(x): return x[:, 64:] + 1
