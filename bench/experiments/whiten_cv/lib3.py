import numpy as np
C = np.load('/tmp/exp/cache.npz')
names = list(C['names']); species = list(C['species']); G = len(names)
HELD = {"Pectobacterium atrosepticum","Aquifex aeolicus","Corynebacterium pseudotuberculosis","Methanobacterium","Shewanella baltica","Akkermansia muciniphila","Blochmannia floridanus","Blochmannia vafer"}
def h4(x): return np.sqrt(np.maximum((x[:,64:]+1)/136,0)).astype(np.float64)
tiles=[h4(C[f'tile_{g}']) for g in range(G)]
Q=h4(C['q_x']); T=h4(C['t_x'])
qg,qd,tg,td=C['q_g'],C['q_d'],C['t_g'],C['t_d']
def norm(x): return x/np.maximum(np.linalg.norm(x,axis=-1,keepdims=True),1e-12)
held=[g for g in range(G) if species[g] in HELD]; bench=[g for g in held if not names[g].startswith('Blochmannia')]
train=[g for g in range(G) if species[g] not in HELD]
DIMS=(8,16,32,64,128)
def evaluate(f, test, db, dims=DIMS):
    dbv=np.stack([f(tiles[g]).mean(0) for g in db])
    m=np.isin(qg,test); y=f(Q[m]); g_=qg[m]; d_=qd[m]
    sp=np.array([species[g] for g in db]); ts=np.array([species[g] for g in g_])
    res={}
    for k in dims:
        if k>y.shape[1]: continue
        S=norm(y[:,:k])@norm(dbv[:,:k]).T; hit=sp[S.argmax(1)]==ts
        res[k]=np.array([100*hit[d_==d].mean() for d in sorted(set(d_))])
    return res
def ret(res,k=16,full=128): return 100*res[k].mean()/res[full].mean()
def fmt(res): return ' '.join(f'{k}:'+'/'.join(f'{v:.1f}' for v in vs) for k,vs in res.items() if k in (16,64,128)) + f' | ret16 {ret(res):.1f}'
sps=sorted(set(species)); _perm=np.random.default_rng(0).permutation(len(sps))
folds=[[g for g in range(G) if sps.index(species[g]) in _perm[i::5]] for i in range(5)]
def cv(mk, dims=DIMS):
    acc={}
    for f in folds:
        tr=[g for g in range(G) if g not in f]
        r=evaluate(mk(tr), f, list(range(G)), dims)
        for k,v in r.items(): acc.setdefault(k,[]).append(np.array(v)*len(f))
    n=sum(len(f) for f in folds)
    return {k:sum(v)/n for k,v in acc.items()}
def report(nm, mk):
    print(f'{nm:34s} bench[{fmt(evaluate(mk(train),bench,bench))}]  cv[{fmt(cv(mk))}]', flush=True)
def stats(gens, nt=300, weight='genome'):
    devs=[]; cents=[]; allT=[]; w=[]
    for g in gens:
        Tg=tiles[g]; m=Tg.mean(0); cents.append(m)
        sel=np.random.default_rng(g).permutation(len(Tg))[:nt]
        devs.append(Tg[sel]-m); allT.append(Tg[sel])
        devs.append(T[tg==g]-m)
    Dv=np.concatenate(devs); Sw=Dv.T@Dv/len(Dv)
    return Sw, np.array(cents), allT
def whiten_mat(Sw, lam):
    d=Sw.shape[0]; e,U=np.linalg.eigh(Sw+lam*np.trace(Sw)/d*np.eye(d)); return U@np.diag(e**-0.5)@U.T
