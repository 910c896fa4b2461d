"""DescriptorStoreService: probe sets, model metadata and logit descriptors."""
