"""Storage: overlay mounts, volumes and safe path resolution."""
