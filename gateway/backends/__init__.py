"""Backend clients, behind the seams of protocols.py (`ChatModel`, `Classifier`): the pipeline sees only those.

- openai_compatible.ChatBackend: an OpenAI-compatible chat server (vLLM: ChexFract, the report model)
- open_inference.ClassifierBackend: the classifier worker or Triton, Open Inference Protocol v2
- base: the one translation of transport and HTTP failures into the gateway's errors
"""
