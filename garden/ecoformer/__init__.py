"""Paper package 'ecoformer' (see garden/ecoformer/README.md)."""
