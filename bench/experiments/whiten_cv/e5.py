import sys, torch, torch.nn.functional as Fn; sys.path.insert(0,'/tmp/exp')
from lib2 import *
exec(open('/tmp/exp/e4.py').read().split("print('raw k4")[0].split('from lib2 import *')[1])
torch.set_num_threads(2)
h4=lambda F: np.sqrt(F['k4'])
def finetune(tr, lam=0.3, steps=300, lr=1e-3, tau=0.05, dims=(8,16,32,64,128), wd=0.0, mlp=False, seed=0):
    f0=fit_white(h4,tr,lam)
    # recover P, b from f0 via probing: f0(F)=h4(F)@P - mu@P
    d=136; I={'k4':None}
    Z=np.zeros((1,d),np.float32); b0=f0({'k4':Z*0})  # h4(0)=0 -> b = -mu@P
    P0=np.stack([f0({'k4':np.eye(d,dtype=np.float32)[i:i+1]**2})[0]-b0[0] for i in range(d)])
    P=torch.tensor(P0,requires_grad=True); b=torch.tensor(b0[0],requires_grad=True)
    params=[P,b]
    if mlp:
        M1=torch.nn.Linear(128,256); M2=torch.nn.Linear(256,128); torch.nn.init.zeros_(M2.weight); torch.nn.init.zeros_(M2.bias)
        params+= list(M1.parameters())+list(M2.parameters())
    def fwd(X):
        y=X@P+b
        return y+M2(Fn.gelu(M1(y))) if mlp else y
    opt=torch.optim.AdamW(params,lr=lr,weight_decay=wd)
    gx=[torch.tensor(h4(tiles[g])) for g in tr]
    sp=np.array([species[g] for g in tr]); same=torch.tensor(sp[:,None]==sp[None,:])
    tm=np.isin(tg,tr); TX=torch.tensor(h4(sub(T,tm))); TL=torch.tensor([tr.index(g) for g in tg[tm]])
    rng=np.random.default_rng(seed)
    for step in range(steps):
        # centroids from a sample of 64 tiles per genome
        cent=torch.stack([fwd(x[torch.from_numpy(rng.integers(0,len(x),64))]).mean(0) for x in gx])
        # queries: half mutated fragments, half tiles
        qi=torch.from_numpy(rng.integers(0,len(TX),128)); q=fwd(TX[qi]); ql=TL[qi]
        tgi=rng.integers(0,len(tr),128); q2=torch.stack([gx[j][rng.integers(0,len(gx[j]))] for j in tgi]); q=torch.cat([q,fwd(q2)]); ql=torch.cat([ql,torch.tensor(tgi)])
        loss=0
        for k in dims:
            s=Fn.normalize(q[:,:k],dim=-1)@Fn.normalize(cent[:,:k],dim=-1).T/tau
            pos=same[ql]
            loss=loss+ (torch.logsumexp(s,1)-torch.logsumexp(s.masked_fill(~pos,-1e9),1)).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    Pn,bn=P.detach().numpy(),b.detach().numpy()
    if mlp:
        return lambda F: fwd(torch.tensor(h4(F))).detach().numpy()
    return lambda F: h4(F)@Pn+bn
for kw in (dict(steps=0),dict(steps=200,lr=3e-4),dict(steps=200,lr=1e-3),dict(steps=200,lr=1e-3,mlp=True)):
    print(kw,'cv',fmt(cv(lambda tr: finetune(tr,**kw))),flush=True)
