exec(open('/tmp/exp/e4.py').read().split("print('raw k4")[0])
def fit_white2(phi, gens, a=0.3, D=128, nt=400):
    devs=[]; cents=[]; allT=[]
    for g in gens:
        Tg=phi(tiles[g]); m=Tg.mean(0); cents.append(m)
        sel=np.random.default_rng(g).permutation(len(Tg))[:nt]
        devs.append(Tg[sel]-m); allT.append(Tg[sel]); devs.append(phi(sub(T,tg==g))-m)
    Dv=np.concatenate(devs).astype(np.float64); Sw=Dv.T@Dv/len(Dv)
    dg=np.diag(Sw).copy(); Sw_r=(1-a)*Sw+a*np.diag(dg)+1e-6*dg.mean()*np.eye(len(dg))
    e,U=np.linalg.eigh(Sw_r); Wh=U@np.diag(e**-0.5)@U.T
    mu=np.mean(cents,0); Z=(np.concatenate(allT)-mu)@Wh
    e2,V=np.linalg.eigh(Z.T@Z); V=V[:,np.argsort(-e2)]; P=(Wh@V[:,:D]).astype(np.float32)
    return lambda F: (phi(F)-mu)@P
h4=lambda F: np.sqrt(F['k4'])
he=lambda F: np.concatenate([np.sqrt(F['k4']), F['enc']],1)
for a in (0.1,0.3,0.6):
    print('diag hell4',a,'cv',fmt(cv(lambda tr: fit_white2(h4,tr,a))),flush=True)
    print('diag hell4+enc',a,'cv',fmt(cv(lambda tr: fit_white2(he,tr,a))),flush=True)
