import numpy as np
C = np.load('/tmp/exp/cache.npz'); C2 = np.load('/tmp/exp/cache2.npz')
names = list(C['names']); species = list(C['species']); G = len(names)
HELD = {"Pectobacterium atrosepticum","Aquifex aeolicus","Corynebacterium pseudotuberculosis","Methanobacterium","Shewanella baltica","Akkermansia muciniphila","Blochmannia floridanus","Blochmannia vafer"}
def freq(c):
    c=c.astype(np.float32); return c/np.maximum(c.sum(1,keepdims=True),1)
def build(enc, k5, k6):
    return {'enc':enc[:,:64], 'k4':(enc[:,64:]+1)/136, 'k5':freq(k5), 'k6':freq(k6)}
tiles=[build(C[f'tile_{g}'],C2[f'tile5_{g}'],C2[f'tile6_{g}']) for g in range(G)]
Q=build(C['q_x'],C2['q5_x'],C2['q6_x']); T=build(C['t_x'],C2['t5_x'],C2['t6_x'])
qg,qd,tg,td=C['q_g'],C['q_d'],C['t_g'],C['t_d']
def sub(F,m): return {k:v[m] for k,v in F.items()}
def norm(x): return x/np.maximum(np.linalg.norm(x,axis=-1,keepdims=True),1e-12)
held=[g for g in range(G) if species[g] in HELD]; bench=[g for g in held if not names[g].startswith('Blochmannia')]
train=[g for g in range(G) if species[g] not in HELD]
def evaluate(f, test, db, dims=(16,64)):
    dbv=np.stack([f(tiles[g]).mean(0) for g in db])
    m=np.isin(qg,test); y=f(sub(Q,m)); g_=qg[m]; d_=qd[m]
    sp=np.array([species[g] for g in db]); ts=np.array([species[g] for g in g_])
    res={}
    for k in dims:
        if k>y.shape[1]: continue
        S=norm(y[:,:k])@norm(dbv[:,:k]).T; hit=sp[S.argmax(1)]==ts
        res[k]=[100*hit[d_==d].mean() for d in sorted(set(d_))]
    return res
def fmt(res): return '  '.join(f'{k}:'+'/'.join(f'{v:.1f}' for v in vs) for k,vs in res.items())
def report(nm,f,dims=(16,64)):
    print(f'{nm:30s} b9:', fmt(evaluate(f,bench,bench,dims)), '| h11:', fmt(evaluate(f,held,held,(64,))), '| h/all:', fmt(evaluate(f,held,list(range(G)),dims)),flush=True)
def fit_white(phi, gens, lam=0.1, D=128, order='total', nt=400):
    devs=[]; cents=[]; allT=[]
    for g in gens:
        Tg=phi(tiles[g]); m=Tg.mean(0); cents.append(m)
        sel=np.random.default_rng(g).permutation(len(Tg))[:nt]
        devs.append(Tg[sel]-m); allT.append(Tg[sel])
        devs.append(phi(sub(T,tg==g))-m)
    Dv=np.concatenate(devs).astype(np.float64); Sw=Dv.T@Dv/len(Dv)
    d=Sw.shape[0]; Sw_r=Sw+lam*np.trace(Sw)/d*np.eye(d)
    e,U=np.linalg.eigh(Sw_r); Wh=U@np.diag(e**-0.5)@U.T
    mu=np.mean(cents,0)
    Z=((np.array(cents) if order=='between' else np.concatenate(allT))-mu)@Wh
    e2,V=np.linalg.eigh(Z.T@Z); V=V[:,np.argsort(-e2)]
    P=(Wh@V[:,:D]).astype(np.float32)
    return lambda F: (phi(F)-mu)@P
