"""Running the lab on a lent GPU machine that reaches no package registry: the kit built here (kit.py, `make
gpu-kit`), and the check that spends the GPU's minutes in one call (check.sh, which runs check.py)."""
