"""Containers: records, state machine, create-request validation and API views."""
