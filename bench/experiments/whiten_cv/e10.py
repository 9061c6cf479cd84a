import sys; sys.path.insert(0,'/tmp/exp')
from lib3 import *
import torch
from mrl_dna.model.encoder import KmerProfile
kp=KmerProfile(4,'centered')
rng=np.random.default_rng(0)
tok=torch.from_numpy((7+rng.integers(0,4,(2000,2000))).astype(np.int64))
x=kp(tok, torch.full((2000,),2000)).numpy()
U=h4(np.concatenate([np.zeros((2000,64)),x],1)); u0=U.mean(0)
def mk(tr, lam=0.3, D=128, origin='mean', beta=1.0):
    Sw,cents,allT=stats(tr); Wh=whiten_mat(Sw,lam); mc=cents.mean(0)
    mu = mc if origin=='mean' else (mc+beta*(u0-mc))
    Z=(np.concatenate(allT)-mc)@Wh
    e2,V=np.linalg.eigh(Z.T@Z/len(Z)); o=np.argsort(-e2); V=V[:,o[:D]]
    return lambda F:(F-mu)@(Wh@V)
report('origin mean', mk)
for b in (0.5,1.0,1.5):
    report(f'origin uniform beta{b}', lambda tr,b=b: mk(tr,origin='u',beta=b))
