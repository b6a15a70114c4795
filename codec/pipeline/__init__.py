"""Orchestration only: pixels <-> transforms <-> entropy parameters <-> coder <-> container."""

from codec.pipeline.image import compress, decode_image, decompress, encode_image, load_model

__all__ = ["compress", "decompress", "encode_image", "decode_image", "load_model"]
