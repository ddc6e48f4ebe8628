"""Model bundles: training, the on-disk format, and the runtime that scores them."""
