"""Fracture VLM stand-in: a LLaVA-style model that vLLM serves like ChexFract.

No real tiny vision-language model is on PyPI, so this one is assembled: a
small SigLIP vision tower and projector with seeded random weights, and
SmolLM2-135M-Instruct as the language model. It exercises vLLM's real
multimodal path (image_url parts, image tokens, batching) but its text does
not depend on the image in any meaningful way; its model card says so.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import (
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    SiglipImageProcessor,
    SiglipVisionConfig,
)

from scripts.modelbuild import report_llm
from scripts.modelbuild.packages import Package
from services.contract import modelcard

SEED = 20261122
IMAGE_SIZE = 224
PATCH_SIZE = 16
IMAGE_TOKEN = "<image>"

# ChatML as SmolLM2 uses it, with one `<image>` token emitted per image part
# (OpenAI `image_url` parts arrive here as {"type": "image"}).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] in ('image', 'image_url') %}<image>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _vision_config() -> SiglipVisionConfig:
    return SiglipVisionConfig(
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
    )


def _fix_vision_keys(weights_file: Path) -> None:
    """transformers 5 saves the SigLIP tower without its `vision_model.` level; vLLM expects it."""
    tensors = load_file(weights_file)
    renamed = {
        key.replace("vision_tower.", "vision_tower.vision_model.", 1)
        if "vision_tower." in key and "vision_tower.vision_model." not in key
        else key: value
        for key, value in tensors.items()
    }
    save_file(renamed, weights_file, metadata={"format": "pt"})


CHEXFRACT_PUBLISHED = [
    modelcard.PublishedMetric(metric=name, value=value, source="ChexFract-CheXagent model card (AIRI-Institute)")
    for name, value in (("fracture_recall", 0.487), ("fracture_precision", 0.750))
]


def build(package: Package, out: Path) -> None:
    language_model, tokenizer = report_llm.load_gguf(package)
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    tokenizer.chat_template = CHAT_TEMPLATE
    text_config = language_model.config
    text_config.vocab_size = len(tokenizer)

    torch.manual_seed(SEED)
    config = LlavaConfig(
        vision_config=_vision_config(),
        text_config=text_config,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="full",  # SigLIP has no CLS token to drop
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
        tie_word_embeddings=text_config.tie_word_embeddings,
    )
    model = LlavaForConditionalGeneration(config)
    language_model.resize_token_embeddings(len(tokenizer))
    model.model.language_model.load_state_dict(language_model.model.state_dict())
    model.lm_head.weight = model.model.language_model.embed_tokens.weight  # SmolLM2 ties its head
    model.save_pretrained(out)
    for weights in out.glob("*.safetensors"):
        _fix_vision_keys(weights)

    image_processor = SiglipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=0,
        chat_template=CHAT_TEMPLATE,
    ).save_pretrained(out)
    modelcard.write(
        out,
        modelcard.ModelCard(
            name="chexfract",
            role="fracture",
            description=(
                f"LLaVA-style stand-in for ChexFract: seeded random SigLIP tower (seed {SEED}) and projector "
                f"over SmolLM2-135M-Instruct; {modelcard.STAND_IN_NOTICE}. Its text does not depend on the "
                "image: it detects no fractures."
            ),
            clinical_use=False,
            stand_in=True,
            source=[modelcard.Source(package=package.name, version=package.version, file=package.files["gguf"])],
            licence="Apache-2.0 (SmolLM2); vision tower and projector are random weights made by set-up",
            commercial_use=True,
            # The figures of the model this stands in for, so that the abstention wording is the one the
            # real model needs; the stand-in itself detects nothing (limits).
            performance=CHEXFRACT_PUBLISHED,
            limits=["stand-in: its text does not depend on the image; it detects no fractures"],
            weights_sha256=modelcard.weights_digests(out, "*.safetensors"),
            built_by="scripts.modelbuild.fracture_vlm",
        ),
    )
