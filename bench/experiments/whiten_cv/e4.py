import sys; sys.path.insert(0,'/tmp/exp')
from lib2 import *
sps=sorted(set(species)); rng=np.random.default_rng(0); perm=rng.permutation(len(sps))
folds=[[g for g in range(G) if sps.index(species[g]) in perm[i::5]] for i in range(5)]
def cv(mk, dims=(16,64)):
    acc={}
    for f in folds:
        tr=[g for g in range(G) if g not in f]
        r=evaluate(mk(tr), f, list(range(G)), dims)
        for k,v in r.items(): acc.setdefault(k,[]).append(np.array(v)*len(f))
    n=sum(len(f) for f in folds)
    return {k:list(sum(v)/n) for k,v in acc.items()}
print('raw k4 full', fmt(evaluate(lambda F:F['k4'],bench,bench,(136,))), fmt(evaluate(lambda F:F['k4'],held,list(range(G)),(136,))), 'cv', fmt(cv(lambda tr:(lambda F:F['k4']),(136,))))
print('raw k6 full', fmt(evaluate(lambda F:F['k6'],bench,bench,(2080,))), fmt(evaluate(lambda F:F['k6'],held,list(range(G)),(2080,))), 'cv', fmt(cv(lambda tr:(lambda F:F['k6']),(2080,))))
h4=lambda F: np.sqrt(F['k4'])
def he(s): return lambda F: np.concatenate([np.sqrt(F['k4']), s*F['enc']],1)
for lam in (0.1,0.3,1.0,3.0):
    print(f'hell4 lam{lam}', 'cv', fmt(cv(lambda tr: fit_white(h4,tr,lam))), flush=True)
for s in (0.003,0.01,0.03):
    print(f'hell4+enc*{s} lam0.3', 'cv', fmt(cv(lambda tr: fit_white(he(s),tr,0.3))), flush=True)
