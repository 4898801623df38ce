"""Optional wide part of long-document students: word-piece n-gram tables beside the transformer."""
