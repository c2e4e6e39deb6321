"""Containers for the end-to-end test of the compose stack: engine, base image, image builds."""
