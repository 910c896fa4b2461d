"""ClipEncoderService: CLIP embeddings, probe-set embeddings and query descriptors."""
