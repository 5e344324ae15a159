"""Fixtures for the training tests: tiny hand-made scenes and configs (2 cores shared: keep runs small)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tiny_scenes import make_scene  # noqa: E402

THREADS = 2


@pytest.fixture(autouse=True)
def _few_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_scenes(tmp_path_factory) -> Path:
    """``train/`` (3 scenes) and ``val/`` (2 other scenes), 96 m drone scenes with 5 sites each."""
    root = tmp_path_factory.mktemp("tiny-scenes")
    for seed in (1, 2, 3):
        make_scene(root / "train" / f"scene_{seed}", seed, n_sites=5)
    for seed in (11, 12):
        make_scene(root / "val" / f"scene_{seed}", seed, n_sites=5)
    return root


@pytest.fixture
def make_config(tmp_path, tiny_scenes):
    """Factory of small training YAMLs over ``tiny_scenes`` (16 m = 32 px windows)."""

    def make(name: str = "train.yaml", *, epochs: int = 3, extra: str = "") -> Path:
        path = tmp_path / name
        path.write_text(
            f"""
data:
  train_scenes: [{tiny_scenes / 'train'}]
  val_scenes: [{tiny_scenes / 'val'}]
  train_stride_m: 16
  norm_tiles: 64
model: {{tile_m: 16}}
optim: {{epochs: {epochs}, batch_size: 16, lr: 0.003, warmup_epochs: 0.2}}
threads: {THREADS}
{extra}
""",
            encoding="utf-8",
        )
        return path

    return make


def _train_tiny(root: Path, tiny_scenes: Path, model: str, epochs: int) -> Path:
    """Train a few short epochs over ``tiny_scenes`` with ``model`` (a YAML flow mapping); its best.pt."""
    from minewatch.train.loop import train_from_config

    cfg = root / "cfg.yaml"
    cfg.write_text(
        f"data:\n  train_scenes: [{tiny_scenes / 'train'}]\n  val_scenes: [{tiny_scenes / 'val'}]\n"
        "  train_stride_m: 16\n  samples_per_epoch: 64\n  norm_tiles: 32\n"
        f"model: {model}\noptim: {{epochs: {epochs}, batch_size: 16}}\n"
        f"threads: {THREADS}\n",
        encoding="utf-8",
    )
    torch.set_num_threads(THREADS)
    return train_from_config(cfg, out=root / "run", device="cpu")


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory, tiny_scenes) -> Path:
    """A checkpoint of one short epoch over ``tiny_scenes`` (shared by the export tests)."""
    return _train_tiny(tmp_path_factory.mktemp("trained"), tiny_scenes, "{tile_m: 16}", epochs=1)


@pytest.fixture(scope="session")
def trained_dense_checkpoint(tmp_path_factory, tiny_scenes) -> Path:
    """A checkpoint with the dense head (container, cooling and heat masks): two short epochs."""
    return _train_tiny(tmp_path_factory.mktemp("trained-dense"), tiny_scenes,
                       "{tile_m: 16, masks: [container, cooling, heat], decoder_channels: 16}", epochs=2)
