"""Task adapters (classification, tagging): encoding, heads, distilled logits, decoding, metrics and serving."""
