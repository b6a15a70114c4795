"""codec: learned image compression with real entropy-coded bitstreams.

Public API (imported lazily, so `import codec` stays light and torch-free until used):
    encode_image(image, model=None, ...) -> bytes
    decode_image(data, ...) -> PIL.Image.Image
    encode_video(frames, model=None, quality=..., gop=32) -> bytes      (frames: list of (H, W, 3) uint8)
    decode_video(data, ...) -> list of (H, W, 3) uint8 frames
    load_model(model_id=None) -> the loaded model bundle

Glossary of symbols (CompressAI / paper names):
    x      input image (B, 3, H, W) in [0, 1], padded to the model stride
    y      latent from the analysis transform g_a, (B, M, H/16, W/16)
    z      hyper-latent from h_a, (B, N, H/64, W/64)
    z_hat  quantised z (integers around the per-channel median), coded with a factorized prior
    mean, scale  Gaussian parameters of y from h_s(z_hat), snapped to a grid before coding
    y_hat  round(y - mean) + mean, input of the synthesis transform g_s
    x_hat  reconstruction, cropped back to the original size
    video: y_t, y_hat_t the latents of frame t; VCT predicts mean, scale of y_t from y_hat_{t-1}, y_hat_{t-2}
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["encode_image", "decode_image", "encode_video", "decode_video", "load_model", "__version__"]


def __getattr__(name):
    if name in ("encode_image", "decode_image", "load_model"):
        from codec import pipeline

        return getattr(pipeline, name)
    if name in ("encode_video", "decode_video"):
        from codec.pipeline import video

        return getattr(video, name)
    raise AttributeError(f"module 'codec' has no attribute {name!r}")
