"""Paper package 'axial_transformer' (see garden/axial_transformer/README.md)."""
