"""The LLM stages of TSLRec: user-level preference fine-tuning and item-embedding augmentation.

backbone -> categories -> prompts -> preference_model -> sft -> augment, one concern per module.
"""
