"""VCT: the block tokens, the masked one-pass forward against cached token-by-token decoding,
causality, the video container, symbol-exact round trips, seeking, damage and salvage, training."""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import pytest
import torch

from codec.models.vct import VCT, VCTConfig, StepDecoder, blocks_of, unblock, windows_of


def tiny(seed: int = 0, channels: int = 6, side: bool = True) -> VCT:
    torch.manual_seed(seed)
    model = VCT(VCTConfig(channels=channels, width=16, heads=2, enc_layers=1, dec_layers=2, side=side)).double().eval()
    with torch.no_grad():  # the head starts at zero; give it weights so parameters depend on the inputs
        model.head.weight.normal_(0, 0.3)
    return model


def _inputs(model: VCT, n: int = 2, h: int = 8, w: int = 12, seed: int = 0):
    """cur, w1, w2, ls, side: a batch of blocks with their previous-frame windows and, for models with
    side information, hyperprior (mean, scale) tokens."""
    g = torch.Generator().manual_seed(seed)
    c = model.config.channels
    frames = [torch.randn(n, c, h, w, generator=g, dtype=torch.float64) * 3 for _ in range(3)]
    cur = blocks_of(frames[2], model.config.block)
    w1, w2 = windows_of(frames[1], model.config), windows_of(frames[0], model.config)
    ls = torch.linspace(-1, 2, cur.shape[0], dtype=torch.float64)
    side = None
    if model.config.side:
        side = (cur + torch.randn(cur.shape, generator=g, dtype=torch.float64),
                torch.rand(cur.shape, generator=g, dtype=torch.float64) * 4 + 0.2)
    return cur, w1, w2, ls, side


def _decode_tokens(model, cur, w1, w2, ls, side=None, cache=True):
    dec = StepDecoder(model, model.encode_previous(w1, ls), model.encode_previous(w2, ls), w1, w2, ls, side, cache=cache)
    means, scales = [], []
    for k in range(model.config.tokens):
        m, s = dec.predict(k)
        means.append(m)
        scales.append(s)
        dec.push(k, cur[:, k])
    return torch.stack(means, 1), torch.stack(scales, 1)


def test_blocks_and_windows_cover_the_latent_in_a_fixed_order():
    y = torch.arange(2 * 3 * 8 * 12, dtype=torch.float64).view(2, 3, 8, 12)
    cfg = VCTConfig(channels=3)
    t = blocks_of(y, 4)
    assert t.shape == (2 * 2 * 3, 16, 3)
    assert torch.equal(unblock(t, 2, 8, 12, 4), y)
    assert torch.equal(t[1, 0], y[0, :, 0, 4])  # second block of the first frame starts at column 4
    win = windows_of(y, cfg)
    assert win.shape == (12, 64, 3)
    assert torch.equal(win[0, 0], torch.zeros(3))  # the window reaches 2 tokens outside: zeros
    model = VCT(cfg)
    assert torch.equal(model.anchor(win), t)  # the window's centre is the block itself


@pytest.mark.parametrize("side", [True, False])
@pytest.mark.parametrize("cache", [True, False])
def test_token_by_token_decoding_gives_the_parameters_of_the_masked_one_pass_forward(cache, side):
    model = tiny(side=side)
    cur, w1, w2, ls, sd = _inputs(model)
    mean, scale = model(cur, w1, w2, ls, sd)
    m2, s2 = _decode_tokens(model, cur, w1, w2, ls, sd, cache)
    torch.testing.assert_close(m2, mean, rtol=0, atol=1e-10)
    torch.testing.assert_close(s2, scale, rtol=0, atol=1e-10)


def test_the_consistency_check_fails_without_the_mask():
    model = tiny()
    cur, w1, w2, ls, sd = _inputs(model)
    mean, _ = model(cur, w1, w2, ls, sd, causal=False)
    m2, _ = _decode_tokens(model, cur, w1, w2, ls, sd)
    assert (m2 - mean).abs().max() > 1e-3


@pytest.mark.parametrize("causal", [True, False])
def test_a_token_never_sees_itself_or_later_tokens(causal):
    model = tiny(3)
    cur, w1, w2, ls, sd = _inputs(model, seed=4)
    mean, scale = model(cur, w1, w2, ls, sd, causal=causal)
    k = 7
    changed = cur.clone()
    changed[:, k] += 5.0
    mean2, scale2 = model(changed, w1, w2, ls, sd, causal=causal)
    moved = ((mean2 - mean).abs() + (scale2 - scale).abs()).amax((0, 2)) > 1e-12  # (16,) per token position
    if causal:
        assert not moved[: k + 1].any() and moved[k + 1 :].all()
    else:
        assert moved[: k + 1].any()  # without the mask the model sees the future: the test above would fail


def test_an_untrained_model_predicts_the_previous_latent_or_the_image_models_guess():
    model = VCT(VCTConfig(channels=4, width=16, heads=2, enc_layers=1, dec_layers=1, side=False, colocated=False)).double()
    cur, w1, w2, ls, _ = _inputs(model)
    mean, _ = model(cur, w1, w2, ls)
    assert torch.equal(mean, model.anchor(w1))
    model = VCT(VCTConfig(channels=4, width=16, heads=2, enc_layers=1, dec_layers=1, side=True)).double()
    cur, w1, w2, ls, (mean_hp, scale_hp) = _inputs(model)
    mean, scale = model(cur, w1, w2, ls, (mean_hp, scale_hp))
    gate = torch.sigmoid(torch.tensor(-4.0, dtype=torch.float64))
    torch.testing.assert_close(mean, mean_hp + gate * (model.anchor(w1) - mean_hp))  # nearly the image model's
    torch.testing.assert_close(scale, scale_hp.clamp_min(0.11))


# --- the codec ---------------------------------------------------------------------------------

from codec.models.hyperprior import HyperpriorConfig, MeanScaleHyperprior  # noqa: E402


def moving_frames(n: int = 5, h: int = 72, w: int = 100, seed: int = 0) -> list[np.ndarray]:
    base = np.random.default_rng(seed).integers(0, 256, (h + 8 * n, w + 8 * n, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[2 * t : 2 * t + h, 3 * t : 3 * t + w]) for t in range(n)]


def _encode(model, frames, **kw):
    from codec.pipeline.video import compress_video

    buf = io.BytesIO()
    h, w = frames[0].shape[:2]
    stats = compress_video(model, frames, buf, width=w, height=h, fps=Fraction(30000, 1001), keep_latents=True, **kw)
    return buf.getvalue(), stats


def _pixels(model, y_hat, h, w):
    with torch.no_grad():
        x = model.module.g_s(y_hat.float()[None])
    return x[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()[:h, :w]


@pytest.mark.parametrize("side", [True, False])
@pytest.mark.parametrize("mode_decision", [False, True])
def test_video_round_trip_decodes_exactly_what_the_encoder_coded(tiny_vct, mode_decision, side):
    from codec.pipeline.video import VideoDecoder

    model = tiny_vct(side=side)
    frames = moving_frames(6, 72, 100)
    data, stats = _encode(model, frames, gop=4, quality=40, mode_decision=mode_decision)
    assert stats.frames == 6 and stats.bytes == len(data)
    if not mode_decision:
        inter = 2 if side else 1  # with side information the z is coded with the temporal prior here
        assert stats.modes == [0, inter, inter, inter, 0, inter]
    dec = VideoDecoder(io.BytesIO(data), model)
    assert dec.video.fps == Fraction(30000, 1001) and dec.video.gop == 4
    out = list(dec.frames())
    assert [n for n, _ in out] == list(range(6))
    for (n, pixels), y_hat in zip(out, stats.latents):
        np.testing.assert_array_equal(pixels, _pixels(model, y_hat, 72, 100))  # same latents, bit for bit
    assert max(float(y.abs().max()) for y in stats.latents) > 2  # more than zeros were coded


def test_mode_decision_takes_inter_where_it_pays_and_intra_where_it_does_not(tiny_vct):
    model = tiny_vct()
    frames = moving_frames(4)
    decided, s1 = _encode(model, frames, gop=8, mode_decision=True, rdo=0.0)  # rdo 0: fewer bytes wins
    all_intra, s2 = _encode(model, frames, gop=1)
    assert s2.modes == [0, 0, 0, 0]
    assert all(mode != 0 for mode in s1.modes[1:])  # copying the previous latent pays on a moving picture
    assert len(decided) <= len(all_intra)
    c = model.tf64.config.channels
    with torch.no_grad():  # a predictor far off with a confident scale: every inter frame costs more
        model.tf64.head.bias[c : 2 * c].fill_(40.0)
        model.tf64.head.bias[2 * c :].fill_(-5.0)
    forced, s3 = _encode(model, frames, gop=8, mode_decision=False, rdo=0.0)
    decided, s4 = _encode(model, frames, gop=8, mode_decision=True, rdo=0.0)
    assert s3.modes[1:] != [0, 0, 0] and s4.modes == [0, 0, 0, 0]
    assert all(a < b for a, b in zip(s4.frame_bytes[1:], s3.frame_bytes[1:]))
    assert len(decided) < len(forced)


def test_the_rate_distortion_mode_cost_adds_the_latent_error_in_steps_over_lambda(tiny_vct):
    from codec.pipeline.rate import rate_for
    from codec.pipeline.vct import _rd_cost

    model = tiny_vct()
    rate = rate_for(model.hp, quality=20)  # step 4
    y = torch.zeros(1, 12, 2, 3)
    y_hat = torch.zeros(12, 2, 3, dtype=torch.float64)
    y_hat[0, 0, 0] = 8.0  # two steps off: 4 squared steps
    streams = [b"abc", b"de"]
    assert _rd_cost(y, y_hat, streams, rate, 0.0) == 40.0
    assert _rd_cost(y, y_hat, streams, rate, 0.05) == pytest.approx(40.0 + 4 / 0.05)


def test_rate_distortion_rounding_codes_fewer_bytes_and_still_decodes_exactly(tiny_vct):
    from codec.pipeline.tiles import synthesize
    from codec.pipeline.video import VideoDecoder

    model = tiny_vct()
    frames = moving_frames(5, 72, 100)
    plain, s0 = _encode(model, frames, gop=8, quality=40, rdo=0.0, mode_decision=False)
    rounded, s1 = _encode(model, frames, gop=8, quality=40, rdo=0.3, mode_decision=False)
    assert s0.frame_bytes[0] == s1.frame_bytes[0]  # the intra frame is untouched (intra_rdo = 0)
    assert sum(s1.frame_bytes[1:]) < sum(s0.frame_bytes[1:])
    assert any(not torch.equal(a, b) for a, b in zip(s0.latents[1:], s1.latents[1:]))
    for data, stats in ((plain, s0), (rounded, s1)):
        dec = VideoDecoder(io.BytesIO(data), model)
        for (_, pixels), y_hat in zip(dec.frames(), stats.latents):
            assert torch.equal(dec.latent, y_hat)  # the symbols the encoder chose, bit for bit
            np.testing.assert_array_equal(pixels, synthesize(model.module.g_s, y_hat.float()[None], 72, 100))


def test_seeking_decodes_the_same_pixels_as_decoding_from_the_start(tiny_vct):
    from codec.pipeline.video import VideoDecoder

    model = tiny_vct()
    data, _ = _encode(model, moving_frames(7), gop=3, mode_decision=False)
    full = dict(VideoDecoder(io.BytesIO(data), model).frames())
    part = list(VideoDecoder(io.BytesIO(data), model).frames(4, 6))
    assert [n for n, _ in part] == [4, 5]
    for n, pixels in part:
        np.testing.assert_array_equal(pixels, full[n])


def test_a_truncated_video_names_the_damaged_frame_and_salvage_keeps_what_precedes_it(tiny_vct):
    from codec.container.video import VideoReader
    from codec.errors import FormatError
    from codec.pipeline.video import VideoDecoder

    model = tiny_vct()
    data, _ = _encode(model, moving_frames(5), gop=8, mode_decision=False)
    frames = list(VideoReader(io.BytesIO(data)).frames())
    cut = frames[3].offset + 20  # inside frame 3
    with pytest.raises(FormatError, match="frame 3"):
        list(VideoDecoder(io.BytesIO(data[:cut]), model).frames())
    dec = VideoDecoder(io.BytesIO(data[:cut]), model)
    got = list(dec.frames(salvage=True))
    assert [n for n, _ in got] == [0, 1, 2] and "frame 3" in dec.damage
    full = dict(VideoDecoder(io.BytesIO(data), model).frames())
    for n, pixels in got:
        np.testing.assert_array_equal(pixels, full[n])


def test_a_flipped_byte_in_a_frame_is_detected_and_named(tiny_vct):
    from codec.container.video import VideoReader
    from codec.errors import FormatError
    from codec.pipeline.video import VideoDecoder

    model = tiny_vct()
    data, _ = _encode(model, moving_frames(4), gop=8, mode_decision=False)
    f2 = list(VideoReader(io.BytesIO(data)).frames())[2]
    bad = bytearray(data)
    bad[f2.offset + 30] ^= 0x10
    with pytest.raises(FormatError, match="frame 2"):
        list(VideoDecoder(io.BytesIO(bytes(bad)), model).frames())


def test_an_image_reader_refuses_a_video_file_and_old_readers_are_told_to_upgrade(tiny_vct):
    from codec.container import read_container
    from codec.container.format import unpack_preamble
    from codec.errors import UnsupportedError

    data, _ = _encode(tiny_vct(side=False), moving_frames(2), gop=8)
    assert unpack_preamble(data[:16]) == (2, 2)  # version-1 readers refuse: "needs a reader of version 2"
    with pytest.raises(UnsupportedError, match="video"):
        read_container(data)
    data, _ = _encode(tiny_vct(), moving_frames(2), gop=8)  # a temporal prior of z: mode 2 frames
    assert unpack_preamble(data[:16]) == (3, 3)  # version-2 readers refuse: "needs a reader of version 3"


def test_a_mode_2_frame_in_a_version_2_file_is_refused_as_corrupt():
    from codec.container import Header
    from codec.container.chunks import KIND_VIDEO
    from codec.container.video import INTER_TZ, INTRA, VideoHeader, VideoReader, VideoWriter
    from codec.errors import FormatError

    header = Header(kind=KIND_VIDEO, width=16, height=16, pad_right=48, pad_bottom=48, bit_depth=8, channels=3,
                    quality=0, weights_sha256_prefix=bytes(8), model_id="m", coder="c", coder_version="0")
    from codec.container.format import FRAM
    from codec.container.framing import frame_chunk
    from codec.container.video import Frame

    for version in (3, 2):
        buf = io.BytesIO()
        w = VideoWriter(buf, header, VideoHeader(Fraction(25), 8), temporal_side=version == 3)
        w.add(INTRA, [b"z", b"y"], keyframe=True)
        if version == 3:
            w.add(INTER_TZ, [b"z", b"y"])
        else:  # what a broken version-2 writer would write: mode 2 in the version-2 layout
            w._write(frame_chunk(FRAM, Frame(1, INTER_TZ, (b"z", b"y"), w.pos, 0).pack(2)))
            w.frames += 1
        w.finish()
        r = VideoReader(io.BytesIO(buf.getvalue()))
        if version == 3:
            assert [(f.mode, f.streams) for f in r.frames()] == [(INTRA, (b"z", b"y")), (INTER_TZ, (b"z", b"y"))]
        else:
            with pytest.raises(FormatError, match="mode 2"):
                list(r.frames())
    with pytest.raises(ValueError, match="temporal_side"):
        w = VideoWriter(io.BytesIO(), header, VideoHeader(Fraction(25), 8))
        w.add(INTRA, [b"z", b"y"], keyframe=True)
        w.add(INTER_TZ, [b"z", b"y"])


def test_frame_index_points_at_every_gop_start(tiny_vct):
    from codec.container.video import INTRA, VideoReader

    data, _ = _encode(tiny_vct(), moving_frames(7), gop=3, mode_decision=False)
    r = VideoReader(io.BytesIO(data))
    index = r.index()
    frames = list(r.frames())
    assert index.frames == 7 and [g[0] for g in index.gops] == [0, 3, 6]
    by_offset = {f.offset: f for f in frames}
    for first, offset in index.gops:
        assert by_offset[offset].number == first and by_offset[offset].mode == INTRA


def test_frame_count_over_the_limit_is_refused_before_decoding(tiny_vct):
    from codec.container import Limits
    from codec.container.video import VideoReader
    from codec.errors import LimitError

    data, _ = _encode(tiny_vct(), moving_frames(4), gop=8)
    with pytest.raises(LimitError, match="--max-frames"):
        VideoReader(io.BytesIO(data), Limits(max_frames=2)).index()


def test_incremental_gaussian_stream_matches_the_one_shot_stream_for_one_batch():
    from codec import coder

    table = np.exp(np.linspace(np.log(0.11), np.log(256), 64))
    rng = np.random.default_rng(0)
    sym = rng.integers(-400, 400, 50).astype(np.int32)
    idx = rng.integers(0, 64, 50)
    enc = coder.GaussianEncoder(table)
    enc.encode(sym, idx)
    data = enc.finish()
    assert data == coder.encode_gaussian(sym, idx, table)
    batches = [(rng.integers(-300, 300, 9).astype(np.int32), rng.integers(0, 64, 9)) for _ in range(4)]
    enc = coder.GaussianEncoder(table)
    for s, i in batches:
        enc.encode(s, i)
    dec = coder.GaussianDecoder(enc.finish(), table)
    for s, i in batches:
        np.testing.assert_array_equal(dec.decode(i), s)
    dec.finish()


# --- training and the command line -------------------------------------------------------------


def _video_data(root, frames=12, size=(128, 192)):
    import av
    from PIL import Image

    (root / "video").mkdir(parents=True)
    (root / "train").mkdir()
    rng = np.random.default_rng(0)
    clip = moving_frames(frames, *size)
    with av.open(str(root / "video" / "clip.mp4"), "w") as box:
        s = box.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = size[1], size[0], "yuv420p"
        s.options = {"crf": "10"}
        for f in clip:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                box.mux(p)
        for p in s.encode():
            box.mux(p)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (160, 200, 3), dtype=np.uint8)).save(root / "train" / f"p{i}.png")
    return clip


def _tiny_hp_weights(tmp_path, monkeypatch):
    """A weights folder (CODEC_WEIGHTS) holding a tiny image model, tiny-hp."""
    from codec.train.export import export_module

    wdir = tmp_path / "weights"
    monkeypatch.setenv("CODEC_WEIGHTS", str(wdir))
    torch.manual_seed(0)
    ae = MeanScaleHyperprior(HyperpriorConfig(N=8, M=12))
    with torch.no_grad():
        ae.g_a[-1].weight.mul_(300.0)
    export_module(ae, "tiny-hp", folder=wdir)
    return wdir


def test_training_a_recurrent_state_on_runs_of_cached_clip_latents_exports_a_model_that_codes(tmp_path, monkeypatch):
    """--length 4 --state 4: runs of 4 frames from the clip's latents, computed once and cached
    (clip_latents.pt); the export carries the state and codes and decodes a clip bit for bit."""
    import csv

    from codec.cli.app import main
    from codec.weights import load_model

    _tiny_hp_weights(tmp_path, monkeypatch)
    clip = _video_data(tmp_path / "data", frames=24, size=(64, 128))
    run = tmp_path / "run"
    args = ["train", "video", "--ae", "tiny-hp", "--data", str(tmp_path / "data"), "--run-dir", str(run),
            "--config", "tiny", "--crop", "64", "--state", "4", "--length", "4", "--windows", "2", "--clip-frames", "8",
            "--eval-frames", "8", "--batch", "2", "--val-every", "2", "--threads", "1"]
    assert main([*args, "--max-steps", "2"]) == 0
    cache = torch.load(run / "clip_latents.pt", weights_only=True)
    assert len(cache["train"]) == 2 and cache["train"][0]["y"].shape[0] == 8  # frames 16..23, two windows
    assert len(cache["val"]) == 1 and cache["val"][0]["y"].shape[0] == 8  # the evaluation window, frames 0..7
    assert main([*args, "--max-steps", "3"]) == 0  # resumes, the cache reused
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 3
    assert any(r["val_y_bpp_0"] for r in csv.DictReader(open(run / "log.csv")))
    assert main(["train", "video", *args[2:], "--length", "3", "--run-dir", str(tmp_path / "r3")]) == 2  # state: runs only
    assert main(["train", "video", *args[2:], "--length", "12", "--run-dir", str(tmp_path / "r12")]) == 2  # no 12-frame runs
    assert main(["train", "video-export", "--checkpoint", str(run / "checkpoint.pt"), "--model-id", "tiny-rec"]) == 0
    model = load_model("tiny-rec")
    assert model.tf.config.state == 4
    data, stats = _encode(model, clip[:6], gop=32, quality=40)
    from codec.pipeline.video import VideoDecoder

    dec = VideoDecoder(io.BytesIO(data), model)
    for (n, _), y_hat in zip(dec.frames(), stats.latents):
        assert torch.equal(dec.latent, y_hat), n


def test_video_training_resumes_exports_and_the_cli_codes_a_clip(tmp_path, monkeypatch):
    import csv

    from codec.cli.app import main
    from codec.zoo import read_manifest

    wdir = _tiny_hp_weights(tmp_path, monkeypatch)
    clip = _video_data(tmp_path / "data")
    run = tmp_path / "run"
    args = ["train", "video", "--ae", "tiny-hp", "--data", str(tmp_path / "data"), "--run-dir", str(run),
            "--config", "tiny", "--crop", "64", "--video-samples", "4", "--photo-samples", "4", "--val-samples", "2",
            "--eval-frames", "2", "--batch", "2", "--val-every", "2", "--threads", "1"]
    assert main([*args, "--max-steps", "2"]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 2
    assert main([*args, "--max-steps", "4"]) == 0  # resumes
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 4
    assert any(r["val_bpp_0"] for r in csv.DictReader(open(run / "log.csv")))
    assert main(["train", "video-export", "--checkpoint", str(run / "checkpoint.pt"), "--model-id", "tiny-vct"]) == 0
    manifest = read_manifest(wdir)
    assert manifest["default_video"] == "tiny-vct" and manifest["default"] == "tiny-hp"

    src = tmp_path / "data" / "video" / "clip.mp4"
    out = tmp_path / "clip.bin"
    assert main(["encode", str(src), "-o", str(out), "--gop", "4", "--quality", "50", "--frames", "1:9"]) == 0
    assert main(["encode", str(src), "-o", str(out)]) == 2  # exists, kept
    assert main(["info", str(out), "--json"]) == 0
    mkv = tmp_path / "clip.mkv"
    assert main(["decode", str(out), "-o", str(mkv)]) == 0
    from codec.videoio import open_video

    with open_video(mkv) as r:
        decoded = list(r)
    assert len(decoded) == 8 and decoded[0].shape == clip[0].shape
    part = tmp_path / "part.mkv"
    assert main(["decode", str(out), "-o", str(part), "--frames", "5:7"]) == 0
    with open_video(part) as r:
        seeked = list(r)
    for a, b in zip(seeked, decoded[5:7]):
        np.testing.assert_array_equal(a, b)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(out.read_bytes()[:-200])
    assert main(["decode", str(cut), "-o", str(tmp_path / "cut.mkv")]) == 3
    assert not (tmp_path / "cut.mkv").exists()
    assert main(["decode", str(cut), "-o", str(tmp_path / "cut.mkv"), "--salvage"]) == 0
    with open_video(tmp_path / "cut.mkv") as r:
        salvaged = list(r)
    assert 0 < len(salvaged) < 8
    for a, b in zip(salvaged, decoded):
        np.testing.assert_array_equal(a, b)

    res = tmp_path / "eval"
    assert main(["eval", "--video", str(src), "--frames", "4", "--gop", "4", "-c", "ours@20,50,80",
                 "-c", "ours-intra@20,50,80", "-o", str(res), "--json"]) == 0
    import json

    results = json.loads((res / "results.json").read_text())
    assert set(results["codecs"]) == {"ours", "ours-intra"} and (res / "rd.png").exists()
    assert "ours" in results["bd"]["ours-intra"]["psnr-rgb"]


def test_one_training_step_changes_the_weights_and_steps_lower_the_loss():
    from codec.train.video import rate_loss

    torch.manual_seed(0)
    tf = VCT(VCTConfig(channels=6, width=16, heads=2, enc_layers=1, dec_layers=1))
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 1, 6, 8, 8, generator=g) * 4
    seq = torch.cat([base, base + 0.3 * torch.randn(4, 1, 6, 8, 8, generator=g),
                     base + 0.6 * torch.randn(4, 1, 6, 8, 8, generator=g)], 1)
    side = torch.stack([seq[:, 2] + torch.randn(4, 6, 8, 8, generator=g), torch.ones(4, 6, 8, 8) * 2], 1)
    ls = torch.zeros(4)
    opt = torch.optim.Adam(tf.parameters(), lr=3e-3)
    before = [p.detach().clone() for p in tf.parameters()]
    losses = []
    for _ in range(30):
        loss = rate_loss(tf, seq, ls, side).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert any(not torch.equal(a, b) for a, b in zip(before, tf.parameters()))
    assert losses[-1] < 0.95 * losses[0]


def test_video_codes_identically_with_one_or_two_threads(tiny_vct):
    from codec.pipeline.video import VideoDecoder

    model = tiny_vct()
    frames = moving_frames(4, 72, 100)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        data1, stats = _encode(model, frames, gop=8, mode_decision=False)
        torch.set_num_threads(2)
        data2, _ = _encode(model, frames, gop=8, mode_decision=False)
        decoded = [p for _, p in VideoDecoder(io.BytesIO(data1), model).frames()]
    finally:
        torch.set_num_threads(threads)
    assert data1 == data2
    for pixels, y_hat in zip(decoded, stats.latents):
        np.testing.assert_array_equal(pixels, _pixels(model, y_hat, 72, 100))


def test_header_kind_tells_video_from_image_files(tiny_vct):
    from codec.container import KIND_PROBE_BYTES, header_kind
    from codec.pipeline.image import compress

    video, _ = _encode(tiny_vct(), moving_frames(2), gop=8)
    image = compress(tiny_vct().hp, moving_frames(1)[0]).data
    assert header_kind(video[:KIND_PROBE_BYTES]) == 1 and header_kind(image[:KIND_PROBE_BYTES]) == 0
    assert header_kind(b"\x89PNG\r\n\x1a\n" + bytes(20)) is None and header_kind(video[:10]) is None


@pytest.mark.parametrize("streams", [(), (b"",), (b"a" * 200, b"", b"b" * 70000), (b"x", b"y")])
@pytest.mark.parametrize("version", [2, 3])
def test_frame_payload_round_trips_in_both_layouts(streams, version):
    from codec.container.video import INTER, Frame

    frame = Frame(300, INTER, streams, 0, 0)
    data = frame.pack(version)
    back = Frame.unpack(data, 0, 0, version)
    assert (back.number, back.mode, back.streams) == (300, INTER, streams)
    if version == 3:
        assert len(data) == 2 + 2 + sum(len(s) for s in streams) + sum(
            1 + (len(s) > 127) + (len(s) > 16383) for s in streams[:-1])


@pytest.mark.parametrize("payload", [b"", b"\x80", b"\x80\x00\x01\x00", b"\xff\xff\xff\xff\x7f\x01\x00",
                                     b"\x05\x01\x02\x90", b"\x05\x01\x02\xff\x01"])
def test_malformed_compact_frame_payloads_are_format_errors(payload):
    from codec.container.video import Frame
    from codec.errors import FormatError

    with pytest.raises(FormatError):
        Frame.unpack(payload, 0, 0, 3)


@pytest.mark.parametrize("where", ["header", "frames"])
@pytest.mark.parametrize("chunk", ["HEAD", "VHDR"])
def test_a_repeated_head_or_vhdr_chunk_is_corrupt(tiny_vct, chunk, where):
    from codec.container.format import HEAD, VHDR
    from codec.container.framing import frame_chunk
    from codec.container.video import VideoReader
    from codec.errors import FormatError

    data, _ = _encode(tiny_vct(side=False), moving_frames(2), gop=8)
    r = VideoReader(io.BytesIO(data))
    first = next(iter(r.frames()))
    # the payload of the first HEAD / VHDR, copied
    pos = 16
    chunks = {}
    while pos < first.offset:
        length = int.from_bytes(data[pos : pos + 4], "little")
        chunks[data[pos + 4 : pos + 8]] = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    ctype = HEAD if chunk == "HEAD" else VHDR
    extra = frame_chunk(ctype, chunks[ctype])
    at = first.offset if where == "header" else first.offset + first.size
    bad = data[:at] + extra + data[at:]
    with pytest.raises(FormatError, match="second|among the frames"):
        r = VideoReader(io.BytesIO(bad))
        list(r.frames())


@pytest.mark.parametrize("num, den", [(1 << 31, 1), (1, 1 << 31), ((1 << 32) - 1, (1 << 31) - 1), (0, 1), (25, 0)])
def test_a_vhdr_frame_rate_that_media_files_cannot_hold_is_corrupt(num, den):
    """Found: a VHDR declaring 2147483648/2147483647 fps decoded until the .mkv/.y4m writer crashed (exit 1)."""
    import struct

    from codec.container.video import VideoHeader
    from codec.errors import FormatError

    with pytest.raises(FormatError, match="VHDR"):
        VideoHeader.unpack(struct.pack("<IIH", num, den, 8))
    if num and den:
        with pytest.raises(ValueError, match="VHDR"):
            VideoHeader(Fraction(num, den), 8).pack()
    edge = VideoHeader(Fraction((1 << 31) - 1, (1 << 31) - 2), 8)
    assert VideoHeader.unpack(edge.pack()) == edge


def test_the_video_encoder_refuses_what_the_default_decoder_refuses(tiny_vct):
    """Found: the encoder wrote files that `codec decode` with its default limits refused (exit 4)."""
    from codec.errors import LimitError
    from codec.pipeline.video import compress_video

    with pytest.raises(LimitError, match="max_dimension"):  # before any frame is read
        compress_video(tiny_vct(), iter(()), io.BytesIO(), width=(1 << 16) + 1, height=16, fps=Fraction(25))


def test_salvage_with_nothing_before_the_damage_is_a_format_error(tiny_vct):
    """Found: `decode --salvage` of a video whose first frame is damaged yielded nothing and the CLI
    called it a usage error (exit 2); there is nothing to salvage, so the input is corrupt."""
    from codec.container.format import FRAM
    from codec.container.framing import frame_chunk
    from codec.container.video import VideoReader
    from codec.errors import FormatError
    from codec.pipeline.video import VideoDecoder

    model = tiny_vct()
    data, _ = _encode(model, moving_frames(3), gop=8, mode_decision=False)
    frames = list(VideoReader(io.BytesIO(data)).frames())
    for damaged in (0, 1):
        f = frames[damaged]
        payload = bytearray(data[f.offset + 8 : f.offset + f.size - 4])
        payload[1] = 7  # the mode byte, CRC recomputed: the chunk reads, the frame is refused
        bad = data[: f.offset] + frame_chunk(FRAM, bytes(payload)) + data[f.offset + f.size :]
        dec = VideoDecoder(io.BytesIO(bad), model)
        if damaged == 0:
            with pytest.raises(FormatError, match="frame 0.*nothing to salvage"):
                list(dec.frames(salvage=True))
        else:
            assert [n for n, _ in dec.frames(salvage=True)] == [0] and "frame 1" in dec.damage
        with pytest.raises(FormatError, match="nothing to salvage"):  # a window after the damage: nothing either
            list(VideoDecoder(io.BytesIO(bad), model).frames(2, salvage=True))


def test_a_video_without_frames_is_a_format_error(tiny_vct):
    from codec.container.video import VideoHeader, VideoWriter
    from codec.errors import FormatError
    from codec.pipeline.rate import rate_for
    from codec.pipeline.video import VideoDecoder, video_header

    model = tiny_vct()
    buf = io.BytesIO()
    VideoWriter(buf, video_header(model, rate_for(model, step=1.0), 16, 16), VideoHeader(Fraction(25), 8)).finish()
    for salvage in (False, True):
        with pytest.raises(FormatError, match="no frame"):
            list(VideoDecoder(io.BytesIO(buf.getvalue()), model).frames(salvage=salvage))
