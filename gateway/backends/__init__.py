"""Backend clients. Each has `ready()` and its call; the pipeline sees only these.

- openai_compatible.ChatBackend: a vLLM server (ChexFract, the report LLM), OpenAI API
- open_inference.ClassifierBackend: the classifier worker or Triton, Open Inference Protocol v2
"""
