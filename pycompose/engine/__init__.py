"""The engine daemon: images, containers and the Docker Engine API."""
