"""Small helpers: atomic file writes, file modes, CPU threads."""
