"""Training machinery: the loop every algorithm runs in, run logging, demonstration recording."""
