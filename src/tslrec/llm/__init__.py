"""The LLM stages of TSLRec: user-level preference fine-tuning and item-embedding augmentation.

causal_lm -> categories -> prompts -> preference_model -> sft_samples -> sft_batches ->
sft_checkpoint -> sft -> augment, one concern per module.
"""
