"""Pretrained weights and tokenizers: where they come from and how they load, offline. Formatters and models both
read this room; it reads neither."""
