"""Task adapters (classification, tagging): encoding, heads, distilled logits, decoding and metrics."""
