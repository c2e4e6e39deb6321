"""cxr-serve gateway: the OpenAI-compatible API hospitals call."""
