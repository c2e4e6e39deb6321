"""The contract every cxr-serve component shares, and nothing else.

Layers, lowest first; an import only ever goes down (tests/test_architecture.py):

    services.contract    classifier model metadata, image decoding and pre-/post-processing,
                         model cards, roles, repository paths, ASGI and logging plumbing
    services.classifier  the ONNX Runtime worker        } deployable services: each imports
    gateway              the OpenAI-compatible gateway  } the contract, never the other
    scripts              tools that build, launch, export or measure (launcher, modelbuild, benches)
    tests

The contract imports no ML runtime (numpy and Pillow only), so the gateway never loads
ONNX Runtime or torch.
"""
