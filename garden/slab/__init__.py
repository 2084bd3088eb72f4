"""Paper package 'slab' (see garden/slab/README.md)."""
