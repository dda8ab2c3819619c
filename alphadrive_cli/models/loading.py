"""Find and load a model + processor: from a model artifact, a local directory or a hub id.

A directory (or artifact) holding a PEFT adapter (``adapter_config.json``) is loaded on top of the
base model its config names, so the same ``--model`` flag takes base models and trained adapters.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from peft import PeftModel
from transformers import AutoConfig, AutoModelForImageTextToText, PretrainedConfig, PreTrainedModel, ProcessorMixin

from alphadrive_cli.artifacts.store import MANIFEST_NAME, Artifact, open_artifact
from alphadrive_cli.errors import BadInput, StageFailure
from alphadrive_cli.models.processor import SUPPORTED_FAMILIES, load_processor
from alphadrive_cli.models.rope_index import use_batched_rope_index
from alphadrive_cli.models.vision_attention import use_batched_vision_attention
from alphadrive_cli.models.vision_dedup import use_distinct_image_features
from alphadrive_cli.prompts import PromptTemplate, student_prompt
from alphadrive_cli.training.numerics import check_finite

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
MODEL_STAGES = ("model", "sft", "grpo")
ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from; ``location`` is what ``from_pretrained`` is given."""

    reference: str
    kind: Literal["artifact", "directory", "hub"]
    location: str
    artifact: Artifact | None = None
    base: ModelSource | None = None  # for a PEFT adapter: the model it adapts

    @property
    def weights(self) -> ModelSource:
        """The source holding the full model's config and weights (the base, for an adapter)."""
        return self.base.weights if self.base is not None else self

    def student_prompt(self, chosen: str | None = None) -> PromptTemplate:
        """The student prompt to train or plan with: ``chosen``, else the one this model's artifact trained with, else
        student-v1."""
        return student_prompt(chosen, self.artifact.manifest if self.artifact is not None else None)

    def describe(self) -> dict[str, Any]:
        """A manifest-ready description (for hub ids and plain directories, which have no lineage)."""
        described: dict[str, Any] = {"kind": self.kind, "location": self.location}
        if self.base is not None:
            described["adapter_on"] = self.base.describe()
        return described


def _adapter_base(path: Path) -> ModelSource | None:
    config_path = path / ADAPTER_CONFIG
    if not config_path.is_file():
        return None
    try:
        base = json.loads(config_path.read_text())["base_model_name_or_path"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BadInput(f"{config_path} is not a readable PEFT adapter config: {exc}") from None
    if not base:
        raise BadInput(f"{config_path} does not name its base model (base_model_name_or_path)")
    return resolve_model_source(str(base))


def resolve_model_source(reference: str) -> ModelSource:
    """Classify a ``--model`` argument, failing with one clear line if it names nothing usable."""
    path = Path(reference)
    if path.exists():
        artifact = open_artifact(path, stage=MODEL_STAGES) if (path / MANIFEST_NAME).is_file() else None
        base = _adapter_base(path)
        if artifact is None and base is None and not (path / "config.json").is_file():
            raise BadInput(
                f"{path} is neither a model artifact nor a model directory (no config.json or {ADAPTER_CONFIG})"
            )
        return ModelSource(reference, "artifact" if artifact else "directory", str(path), artifact, base)
    if _HUB_ID.match(reference) and not reference.startswith("."):
        return ModelSource(reference, "hub", reference)
    raise BadInput(
        f"no such model: {reference!r} is not a local path, and hub ids look like 'Qwen/Qwen2-VL-2B-Instruct'"
    )


def model_inputs(source: ModelSource | None) -> dict[str, Artifact]:
    """The lineage inputs of a model that is scored: its artifact (``model``) and, for an adapter, its
    base's (``base_model``); plain directories and hub ids have none."""
    inputs: dict[str, Artifact] = {}
    if source is not None and source.artifact is not None:
        inputs["model"] = source.artifact
    if source is not None and source.base is not None and source.base.artifact is not None:
        inputs["base_model"] = source.base.artifact
    return inputs


def model_config(source: ModelSource) -> PretrainedConfig:
    """The model's config, checked to be a supported family."""
    try:
        config = AutoConfig.from_pretrained(source.weights.location)
    except (OSError, ValueError) as exc:
        raise StageFailure(f"could not read the config of model {source.reference!r}: {exc}".splitlines()[0]) from None
    if config.model_type not in SUPPORTED_FAMILIES:
        raise BadInput(
            f"model {source.reference!r} is a {config.model_type!r} model; "
            f"alphadrive supports {', '.join(SUPPORTED_FAMILIES)}"
        )
    return config


def load_model(
    source: ModelSource, dtype: torch.dtype | str = "auto", trainable_adapter: bool = False, **kwargs: Any
) -> PreTrainedModel:
    """Load the vision-language model (extra keyword arguments go to ``from_pretrained``), adapter applied
    (frozen, or trainable with ``trainable_adapter``) and sped up (:func:`use_fast_paths`); weights holding
    NaN or infinity are an error."""
    model_config(source)
    try:
        model = AutoModelForImageTextToText.from_pretrained(source.weights.location, dtype=dtype, **kwargs)
        if source.base is not None:
            model = PeftModel.from_pretrained(model, source.location, is_trainable=trainable_adapter)
    except (OSError, ValueError) as exc:
        raise StageFailure(f"could not load model {source.reference!r}: {exc}".splitlines()[0]) from None
    use_fast_paths(model)
    check_finite(
        dict(model.named_parameters()),
        f"model {source.reference!r}",
        "it was not used (a diverged run's weights decode only garbage)",
        BadInput,
    )
    return model


def use_fast_paths(model: torch.nn.Module) -> None:
    """Same outputs, less work: Qwen2-VL's rope index batched on the host (:mod:`~alphadrive_cli.models.rope_index`),
    each distinct image of a batch encoded once (:mod:`~alphadrive_cli.models.vision_dedup`), equally long images
    attended in one call per vision block (:mod:`~alphadrive_cli.models.vision_attention`)."""
    use_batched_rope_index(model)
    use_distinct_image_features(model)
    use_batched_vision_attention(model)


def processor_location(source: ModelSource) -> str:
    """Where the processor is: an adapter saved with its processor (as trainers do) has its own, else the base's."""
    return source.location if (Path(source.location) / "processor_config.json").is_file() else source.weights.location


def load_model_and_processor(
    source: ModelSource, dtype: torch.dtype | str = "auto", **kwargs: Any
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Load a model and its processor from the same source."""
    model = load_model(source, dtype=dtype, **kwargs)
    try:
        processor = load_processor(processor_location(source), family=model.config.model_type)
    except OSError as exc:
        raise StageFailure(f"could not load the processor of {source.reference!r}: {exc}".splitlines()[0]) from None
    return model, processor


def config_from_file(path: Path, **overrides: Any) -> PretrainedConfig:
    """A model config from a JSON file of dimensions (keys starting with '_' are comments)."""
    try:
        loaded = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"cannot read model config {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise BadInput(f"cannot read model config {path}: expected a JSON object, got {type(loaded).__name__}")
    values = {key: value for key, value in loaded.items() if not key.startswith("_")}
    model_type = values.pop("model_type", None)
    if model_type not in SUPPORTED_FAMILIES:
        raise BadInput(f"{path}: model_type must be one of {', '.join(SUPPORTED_FAMILIES)}, got {model_type!r}")
    values.pop("architectures", None)
    for key, value in overrides.items():
        if isinstance(value, dict):
            values[key] = {**values.get(key, {}), **value}
        else:
            values[key] = value
    return AutoConfig.for_model(model_type, **values)


def build_random_model(
    config: PretrainedConfig, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> PreTrainedModel:
    """Instantiate an architecture with random weights (``device='meta'`` allocates nothing)."""
    with torch.device(device):
        return AutoModelForImageTextToText.from_config(config, dtype=dtype)
