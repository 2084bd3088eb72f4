"""Paper package 'lean_attention' (see garden/lean_attention/README.md)."""
