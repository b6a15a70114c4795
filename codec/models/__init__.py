"""Model families, one file per paper."""
