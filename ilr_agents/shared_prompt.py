"""A GRPOTrainer whose loss reads each group's prompt once instead of once per completion.

Why: GRPO scores n completions of one prompt, and TRL's loss runs the model over prompt + completion for
every row, so the prompt is read n times forward and n times backward. In ILR the final-stage prompt is
the whole discussion (question, every idea, every analysis), several times longer than the answer being
trained, so that repetition was most of an ILR step (bench/report.md, training overhead).

How: rows are grouped by identical prompt ids and mask (GRPO keeps a group's rows together); the distinct
prompts minus their last token run once with a KV cache, the cache is indexed out to every row, and the
rows run "last prompt token + completion" on top of it through TRL's own fused log-prob head. Position
ids equal TRL's (``arange`` over prompt + completion, padding included), the mask is the same, and
gradients flow back through the cache into the shared prompt pass, so log-probs, entropies and gradients
match TRL's forward up to float rounding (tests/agents/test_shared_prompt.py). Anything this path does not
cover (multimodal inputs, MoE aux loss, gradient checkpointing, caches other than full-attention
``DynamicLayer``s, chunked no-grad passes, batches without repeated prompts) goes to TRL's forward.
"""

from __future__ import annotations

from typing import Any

import torch
from trl import GRPOTrainer


class SharedPromptGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose loss forward shares each group's prompt (exact; see the module docstring)."""

    shared_prompt_forward = True

    def _get_per_token_logps_and_entropies(
        self,
        model: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        batch_size: int | None = None,
        compute_entropy: bool = False,
        compute_aux_loss: bool = False,
        **extra: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        def trl_forward() -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
            return super(SharedPromptGRPOTrainer, self)._get_per_token_logps_and_entropies(
                model,
                input_ids,
                attention_mask,
                logits_to_keep,
                batch_size=batch_size,
                compute_entropy=compute_entropy,
                compute_aux_loss=compute_aux_loss,
                **extra,
            )

        rows = input_ids.size(0)
        prompt_len = input_ids.size(1) - logits_to_keep
        groups = (
            self._prompt_groups(input_ids[:, :prompt_len], attention_mask[:, :prompt_len])
            if (
                self.shared_prompt_forward
                and not compute_aux_loss
                and prompt_len >= 2
                and not any(v is not None for v in extra.values())
                and (batch_size is None or batch_size >= rows)
                and not getattr(self.args, "gradient_checkpointing", False)
            )
            else None
        )
        if groups is None:
            return trl_forward()
        firsts, row_to_group = groups
        with self.accelerator.autocast():
            prefix = model(
                input_ids=input_ids[firsts, : prompt_len - 1],
                attention_mask=attention_mask[firsts, : prompt_len - 1],
                use_cache=True,
                logits_to_keep=1,
            )
        cache = getattr(prefix, "past_key_values", None)
        layers = getattr(cache, "layers", None)
        if not layers or any(not _plain_full_attention(layer) for layer in layers):
            return trl_forward()
        cache.batch_select_indices(row_to_group)
        tail = input_ids[:, prompt_len - 1 :]
        labels = tail.masked_fill(attention_mask[:, prompt_len - 1 :] == 0, -100)
        labels[:, :1] = -100  # the last prompt token is context, as in TRL
        with self.accelerator.autocast():
            outputs = model(
                input_ids=tail,
                attention_mask=attention_mask,
                past_key_values=cache,
                labels=labels,
                fused_lm_head=True,
            )
        logps = outputs.log_probs[:, -logits_to_keep:]
        entropies = outputs.entropy[:, -logits_to_keep:] if compute_entropy else None
        return logps, entropies, None

    @staticmethod
    def _prompt_groups(
        prompt_ids: torch.Tensor, prompt_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(first row of each distinct prompt, group index of every row), or None when nothing repeats."""
        keyed = torch.cat([prompt_ids, prompt_mask], dim=1)
        unique, inverse = torch.unique(keyed, dim=0, return_inverse=True)
        if unique.size(0) == keyed.size(0):
            return None
        firsts = torch.full((unique.size(0),), keyed.size(0), dtype=torch.long, device=keyed.device)
        firsts.scatter_reduce_(0, inverse, torch.arange(keyed.size(0), device=keyed.device), reduce="amin")
        return firsts, inverse


def _plain_full_attention(layer: Any) -> bool:
    from transformers.cache_utils import DynamicLayer

    return type(layer) is DynamicLayer
