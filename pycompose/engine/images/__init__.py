"""Images: content-addressed blobs, manifests, the image store, archives and the registry."""
