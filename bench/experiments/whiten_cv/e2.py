import sys; sys.path.insert(0,'/tmp/exp')
from lib import *
held = [g for g in range(G) if species[g] in HELD]
bench = [g for g in held if not names[g].startswith('Blochmannia')]
train = [g for g in range(G) if species[g] not in HELD]
def report(nm,f):
    print(f'{nm:28s} b9:', fmt(evaluate(f,bench,bench,dims=(16,64))), '| h11:', fmt(evaluate(f,held,held,dims=(64,))), '| h/all:', fmt(evaluate(f,held,list(range(G)),dims=(16,64))),flush=True)
def fit_white(phi, gens, lam=0.1, use_mut=True, D=128, order='between'):
    # within-genome deviations
    devs=[]; cents=[]
    for g in gens:
        T=phi(tiles[g]); m=T.mean(0); cents.append(m)
        devs.append(T[np.random.default_rng(g).permutation(len(T))[:400]]-m)
        if use_mut:
            sel=C['t_g']==g
            devs.append(phi(C['t_x'][sel])-m)
    Dv=np.concatenate(devs); Sw=Dv.T@Dv/len(Dv)
    d=Sw.shape[0]; Sw_r=Sw+lam*np.trace(Sw)/d*np.eye(d)
    ev_,U=np.linalg.eigh(Sw_r); Wh=U@np.diag(ev_**-0.5)@U.T
    mu=np.mean(cents,0)
    Cc=(np.array(cents)-mu)@Wh
    if order=='between':
        e2,V=np.linalg.eigh(Cc.T@Cc); V=V[:,np.argsort(-e2)]
    else:
        allT=np.concatenate([phi(tiles[g]) for g in gens]); Z=(allT-mu)@Wh
        e2,V=np.linalg.eigh(Z.T@Z); V=V[:,np.argsort(-e2)]
    P=Wh@V[:,:D]
    return lambda x: (phi(x)-mu)@P
ident=lambda x:x
km=lambda x:x[:,64:]
hell=lambda x:np.sqrt(np.clip((x[:,64:]+1)/136,0,None))
def clr(x):
    f=np.clip((x[:,64:]+1)/136,0,None)+1e-3; l=np.log(f); return l-l.mean(1,keepdims=True)
both_h=lambda x:np.concatenate([x[:,:64]*0.1,hell(x)*10],1)
report('shipped',shipped_head)
for nm,phi in [('all200',ident),('kmer4',km),('hell',hell),('clr',clr)]:
    for lam in (0.01,0.1):
        report(f'white {nm} lam{lam}',fit_white(phi,train,lam))
report('white all200 lam0.1 noMut',fit_white(ident,train,0.1,use_mut=False))
report('white all200 lam0.1 totalPCA',fit_white(ident,train,0.1,order='total'))
