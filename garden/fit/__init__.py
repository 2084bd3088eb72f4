"""Paper package 'fit' (see garden/fit/README.md)."""
