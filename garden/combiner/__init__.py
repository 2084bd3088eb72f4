"""Paper package 'combiner' (see garden/combiner/README.md)."""
