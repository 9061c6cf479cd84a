import sys; sys.path.insert(0,'/tmp/exp')
from lib import *
held = [g for g in range(G) if species[g] in HELD]
bench = [g for g in held if not names[g].startswith('Blochmannia')]
print('held', [names[g] for g in held])
for nm,f in [('shipped',shipped_head),('kmer4 centered',kmer4),('kmer4 raw',kmer4raw),('enc only',lambda x:x[:,:64])]:
    print(f'{nm:16s} bench9:', fmt(evaluate(f,bench,bench)), '| held11:', fmt(evaluate(f,held,held,dims=(64,))), '| held vs all28:', fmt(evaluate(f,held,list(range(G)),dims=(64,))))
