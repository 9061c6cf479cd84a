import sys; sys.path.insert(0,'/tmp/exp')
import lib3
from lib3 import *
def mk(tr, lam=0.3, D=128):
    Sw,cents,allT=stats(tr); Wh=whiten_mat(Sw,lam); mu=cents.mean(0)
    Z=(np.concatenate(allT)-mu)@Wh
    e2,V=np.linalg.eigh(Z.T@Z/len(Z)); o=np.argsort(-e2); V=V[:,o[:D]]
    return lambda F:(F-mu)@(Wh@V)
def evaluate_euc(f, test, db, dims=DIMS, const=None):
    dbv=np.stack([f(tiles[g]).mean(0) for g in db])
    m=np.isin(qg,test); y=f(Q[m]); g_=qg[m]; d_=qd[m]
    sp=np.array([species[g] for g in db]); ts=np.array([species[g] for g in g_])
    res={}
    for k in dims:
        a=y[:,:k]; b=dbv[:,:k]
        if const is None:
            S=-((a[:,None,:]-b[None])**2).sum(-1)
        else:
            c=const*np.sqrt(k)
            a=np.concatenate([np.full((len(a),1),c),a[:,:k-1]],1); b=np.concatenate([np.full((len(b),1),c),b[:,:k-1]],1)
            S=norm(a)@norm(b).T
        hit=sp[S.argmax(1)]==ts
        res[k]=np.array([100*hit[d_==d].mean() for d in sorted(set(d_))])
    return res
f=mk(train)
print('cos   ', fmt(evaluate(f,bench,bench)))
print('euc   ', fmt(evaluate_euc(f,bench,bench)))
for c in (0.5,1,2,4,8):
    print(f'const{c}', fmt(evaluate_euc(f,bench,bench,const=c)))
# norms
y=f(Q); print('typical norm of 16-prefix', np.median(np.linalg.norm(y[:,:16],axis=1)), 'per-dim rms', np.sqrt((y[:,:16]**2).mean()))
def cvx(**kw):
    acc={}
    for fo in folds:
        tr=[g for g in range(G) if g not in fo]
        r=evaluate_euc(mk(tr), fo, list(range(G)), **kw)
        for k,v in r.items(): acc.setdefault(k,[]).append(np.array(v)*len(fo))
    n=sum(len(fo) for fo in folds); return {k:sum(v)/n for k,v in acc.items()}
print('cv euc', fmt(cvx()))
for c in (1,2,4):
    print(f'cv const{c}', fmt(cvx(const=c)))
