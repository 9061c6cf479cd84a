import sys, csv; sys.path.insert(0,'/tmp/exp')
from lib3 import *
import torch
from pathlib import Path
from mrl_dna.model.encoder import KmerProfile
from mrl_dna import evaluate as ev
torch.set_num_threads(1)
DATA=Path('/work/shared/data')
rows=list(csv.DictReader(open(DATA/'MANIFEST.tsv'),delimiter='\t'))
files=[DATA/r['file'] for r in rows if int(r['bp'])>=100000 and not r['file'].startswith('small/Ssonnei')]
assert [ev.genome_name(f) for f in files]==names, 'order'
kp=KmerProfile(4,'centered')
def tri_probs(g):
    gen=ev.load_genomes([files[g]])[0]; cnt=np.zeros(64)
    for r in gen.records:
        b=r.astype(np.int64)-7; ok=(b>=0)&(b<4)
        c=b[:-2]*16+b[1:-1]*4+b[2:]; v=ok[:-2]&ok[1:-1]&ok[2:]
        cnt+=np.bincount(c[v],minlength=64)
    P=(cnt.reshape(16,4)+1); return P/P.sum(1,keepdims=True)
def simulate(Ps, nwin=30, L=2000, seed=0):
    rng=np.random.default_rng(seed); S=len(Ps); n=S*nwin
    cum=np.cumsum(np.repeat(np.stack(Ps),nwin,0),-1)  # (n,16,4)
    st=rng.integers(0,16,n); out=np.empty((n,L),np.int64); ar=np.arange(n)
    for i in range(L):
        u=rng.random(n); nb=(u[:,None]>cum[ar,st]).sum(1).clip(max=3)
        out[:,i]=nb; st=(st%4)*4+nb
    x=kp(torch.from_numpy(out+7), torch.full((n,),L)).numpy()
    F=h4(np.concatenate([np.zeros((n,64)),x],1))
    return F.reshape(S,nwin,-1).mean(1)
import functools
@functools.lru_cache(None)
def TP(g): return tri_probs(g)
def synth(gens, kind, conc, S=150, seed=0):
    rng=np.random.default_rng(seed); Ps=[]
    for s in range(S):
        if kind=='perturb':
            th=TP(int(rng.choice(gens))); Ps.append(np.stack([rng.dirichlet(conc*th[c]) for c in range(16)]))
        else:
            Ps.append(np.stack([rng.dirichlet(np.full(4,conc)) for c in range(16)]))
    return simulate(Ps, seed=seed)
def mk(tr, prior=None, tau=1.0, lam=0.3, D=128):
    Sw,cents,allT=stats(tr); Wh=whiten_mat(Sw,lam); mu=cents.mean(0)
    Z=(np.concatenate(allT)-mu)@Wh; Cz=Z.T@Z/len(Z)
    if prior is not None:
        Zp=(prior(tr)-mu)@Wh; Zp-=Zp.mean(0); Cp=Zp.T@Zp/len(Zp)
        Cz=Cz+tau*Cp*np.trace(Cz)/np.trace(Cp)
    e2,V=np.linalg.eigh(Cz); o=np.argsort(-e2); V=V[:,o[:D]]
    return lambda F:(F-mu)@(Wh@V)
import time; t=time.time()
report('base', mk)
for kind,conc in (('perturb',50),('perturb',200),('random',5),('random',20)):
    cache={}
    def prior(tr, kind=kind, conc=conc):
        k=tuple(tr)
        if k not in cache: cache[k]=synth(tr,kind,conc)
        return cache[k]
    for tau in (0.3,1.0):
        report(f'{kind} c{conc} tau{tau}', lambda tr,tau=tau,prior=prior: mk(tr,prior,tau))
    print(f'{time.time()-t:.0f}s',flush=True)
