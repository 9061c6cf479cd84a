import sys; sys.path.insert(0,'/tmp/exp')
from lib2 import *
raw=lambda k: (lambda F: F[k])
report('raw k4 cos',raw('k4')); report('raw k6 cos',raw('k6')); report('raw k5 cos',raw('k5'),dims=(16,64))
hs=lambda *ks: (lambda F: np.concatenate([np.sqrt(F[k]) for k in ks],1))
for ks in (('k4',),('k5',),('k6',),('k4','k5')):
    for lam in (0.03,0.1,0.3):
        report(f'white hell {ks} {lam}',fit_white(hs(*ks),train,lam))
