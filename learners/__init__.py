"""Pure loss / advantage functions and update strategies (torch, DeepSpeed), checkpointing."""
