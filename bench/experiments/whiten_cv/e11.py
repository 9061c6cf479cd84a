import sys; sys.path.insert(0,'/tmp/exp')
from lib3 import *
def mk(tr, lam=0.3, D=128, order_gens=None, mix=0.0):
    Sw,cents,allT=stats(tr); Wh=whiten_mat(Sw,lam); mu=cents.mean(0)
    Z=(np.concatenate(allT)-mu)@Wh; Cz=Z.T@Z/len(Z)
    if order_gens is not None:
        oc=np.stack([tiles[g].mean(0) for g in order_gens]); Zo=(oc-mu)@Wh; Co=Zo.T@Zo/len(Zo)
        Cz=(1-mix)*Cz+mix*Co
    e2,V=np.linalg.eigh(Cz); o=np.argsort(-e2); V=V[:,o[:D]]
    return lambda F:(F-mu)@(Wh@V)
f=mk(train); print('base  ', fmt(evaluate(f,bench,bench)))
for mix in (0.5,1.0):
    f=mk(train,order_gens=bench,mix=mix); print(f'oracle mix{mix}', fmt(evaluate(f,bench,bench)))
f=mk(train,order_gens=list(range(G)),mix=0.5); print('all-genomes mix0.5', fmt(evaluate(f,bench,bench)))
