import sys; sys.path.insert(0,'/tmp/exp')
from lib3 import *
def mk_base(lam=0.3, order='total', alpha=0.0, spw=False, D=128):
    def mk(tr):
        Sw,cents,allT=stats(tr)
        Wh=whiten_mat(Sw,lam)
        if spw:
            sp=np.array([species[g] for g in tr]); us=sorted(set(sp))
            sc=np.stack([cents[sp==s].mean(0) for s in us]); mu=sc.mean(0)
        else:
            mu=cents.mean(0)
        if order=='total':
            Z=(np.concatenate(allT)-mu)@Wh
        else:
            Z=((sc if spw else cents)-mu)@Wh
        e2,V=np.linalg.eigh(Z.T@Z/len(Z)); o=np.argsort(-e2); V=V[:,o[:D]]; e2=np.maximum(e2[o[:D]],1e-12)
        P=Wh@V*(e2**(alpha/2))
        return lambda F:(F-mu)@P
    return mk
report('base lam0.3', mk_base())
report('between', mk_base(order='between'))
report('species-weighted between', mk_base(order='between', spw=True))
report('species-weighted total', mk_base(spw=True))
for a in (-0.5, 0.5, 1.0):
    report(f'alpha {a}', mk_base(alpha=a))
for lam in (0.1, 1.0, 3.0):
    report(f'lam {lam}', mk_base(lam=lam))
