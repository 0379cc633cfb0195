
®
seed2.protoseed.v2"p
Opt
a (:7Ra
s (	:xRs
b (Rb 
next (2.seed.v2.OptRnext
f (BRf*dÉ2$
S
M.seed.v2.Opt.seed.v2.Opt