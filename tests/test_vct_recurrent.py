"""VCT's recurrent state (issue 18, RLVC's recurrent probability model): it reads decoded frames only
and never the current one, it is snapped to its grid, both sides hold it bit for bit, a keyframe
starts it again (seeking), and a model fine-tuned from a two-frame one starts as that model."""

from __future__ import annotations

import io

import pytest
import torch

from codec.models.vct import STATE_GRID, VCT, VCTConfig, snap_state
from codec.train.video import run_bits, run_loss, run_states

from test_vct import _encode, moving_frames


def _tiny(state: int = 4) -> VCT:
    torch.manual_seed(0)
    tf = VCT(VCTConfig(channels=6, width=16, heads=2, enc_layers=1, dec_layers=1, state=state))
    with torch.no_grad():
        tf.head.weight.normal_(0, 0.05)
        if state:
            tf.embed_state.weight.normal_(0, 0.5)
    return tf.double().eval()


def _run(seed: int = 0, length: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.round(torch.randn(2, length, 6, 8, 8, generator=g, dtype=torch.float64) * 3)


def test_the_state_a_frame_reads_comes_from_the_frames_before_it_only():
    tf, q = _tiny(), _run()
    states = run_states(tf, q)
    assert states[0] is None and all(s is not None for s in states[1:])
    for t in range(1, q.shape[1] - 1):
        changed = q.clone()
        changed[:, t] += 4.0
        after = run_states(tf, changed)
        assert all(torch.equal(a, b) for a, b in zip(after[1 : t + 1], states[1 : t + 1])), t  # up to frame t: unchanged
        assert not torch.equal(after[t + 1], states[t + 1])  # the frame after it reads it


def test_the_bits_of_a_frame_never_depend_on_later_frames():
    tf, y = _tiny(), _run() + 0.3
    side = torch.stack([torch.zeros_like(y), torch.ones_like(y)], 2)
    ls = torch.zeros(2, dtype=torch.float64)
    base = run_bits(tf, y, ls, side)  # (N, 4): frames 1..4
    changed = y.clone()
    changed[:, 3] += 4.0
    moved = run_bits(tf, changed, ls, side)
    assert torch.equal(moved[:, :2], base[:, :2])  # frames 1 and 2
    assert not torch.equal(moved[:, 2], base[:, 2]) and not torch.equal(moved[:, 3], base[:, 3])


def test_the_state_sits_on_its_grid_and_passes_gradients_through_the_snap():
    s = torch.tensor([0.1, -0.37, 1e-9], dtype=torch.float64, requires_grad=True)
    out = snap_state(s)
    assert torch.equal(out.detach() / STATE_GRID, torch.round(out.detach() / STATE_GRID))
    out.sum().backward()
    assert torch.equal(s.grad, torch.ones(3, dtype=torch.float64))
    tf, q = _tiny(), _run()
    for st in run_states(tf, q)[1:]:
        assert torch.equal(st, torch.round(st / STATE_GRID) * STATE_GRID)


def test_a_fresh_state_embedding_leaves_the_two_frame_model_as_it_was():
    torch.manual_seed(1)
    base = VCT(VCTConfig(channels=6, width=16, heads=2, enc_layers=1, dec_layers=1)).double().eval()
    rec = VCT(VCTConfig(channels=6, width=16, heads=2, enc_layers=1, dec_layers=1, state=4)).double().eval()
    missing, unexpected = rec.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("recurrent.", "embed_state.")) for k in missing)
    y = _run(2) + 0.25
    side = torch.stack([torch.zeros_like(y), torch.ones_like(y)], 2)
    ls = torch.zeros(2, dtype=torch.float64)
    assert torch.equal(run_loss(rec, y, ls, side), run_loss(base, y, ls, side))


def test_coding_with_a_state_decodes_bit_exactly_and_the_state_changes_the_stream(tiny_vct):
    from codec.pipeline.video import VideoDecoder

    frames = moving_frames(6, 64, 64)
    model = tiny_vct(state=4)
    data, stats = _encode(model, frames, gop=32, quality=40)
    dec = VideoDecoder(io.BytesIO(data), model)
    for (n, _), y_hat in zip(dec.frames(), stats.latents):
        assert torch.equal(dec.latent, y_hat), n
    quiet = tiny_vct(state=4)
    with torch.no_grad():
        quiet.tf.embed_state.weight.zero_()
    from codec.pipeline.vct import from_modules

    quiet = from_modules(quiet.hp, quiet.tf, quiet.model_id)
    other, _ = _encode(quiet, frames, gop=32, quality=40)
    assert other != data  # the state is read: without it the inter frames code differently


def test_seeking_starts_the_state_again_at_the_keyframe(tiny_vct):
    from codec.pipeline.video import VideoDecoder

    frames = moving_frames(7, 64, 64)
    model = tiny_vct(state=4)
    data, stats = _encode(model, frames, gop=3, quality=40)
    for start in (2, 3, 4, 6):
        dec = VideoDecoder(io.BytesIO(data), model)
        got = [(n, dec.latent) for n, _ in dec.frames(start)]
        assert [n for n, _ in got] == list(range(start, 7))
        for n, y_hat in got:
            assert torch.equal(y_hat, stats.latents[n]), (start, n)


@pytest.mark.parametrize("gop", [1])
def test_all_intra_keeps_no_state(tiny_vct, gop):
    from codec.pipeline.rate import rate_for
    from codec.pipeline.vct import FrameCoder

    model = tiny_vct(state=4)
    fc = FrameCoder(model, rate_for(model, quality=40), gop)
    x = torch.from_numpy(moving_frames(1, 64, 64)[0]).permute(2, 0, 1)[None].float().div(255)
    fc.encode(x, True)
    assert fc.state is None


@pytest.mark.parametrize("threads", [1, 8])
def test_the_shipped_recurrent_golden_file_decodes_the_same_in_fresh_processes_with_any_thread_count(threads, tmp_path):
    """The state is float64 and snapped on both sides: a fresh process with `threads` threads decodes
    the same symbols (and so the same states) as this one."""
    from codec.settings import REPO_ROOT
    from codec.testing.determinism import run_probe
    from codec.testing.digests import decode_video_with_latents_sha256

    path = REPO_ROOT / "tests" / "golden" / "video_carphone_6f_recurrent.bin"
    data = path.read_bytes()
    row = run_probe(path, tmp_path / "pixels.npy", threads, "default", "best")
    assert row["threads"] == threads and row["symbols"] == decode_video_with_latents_sha256(data)[1][:16]
