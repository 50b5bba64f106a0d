"""The compose loader: files -> validated, normalised, frozen project model."""
