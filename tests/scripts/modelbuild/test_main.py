"""Set-up leaves models/ readable by the containers' non-root user."""

import stat

from scripts.modelbuild.__main__ import readable_by_every_user


def test_weights_written_private_become_readable_by_every_user(tmp_path):
    folder = tmp_path / "report-llm"
    folder.mkdir(mode=0o700)
    weights = folder / "model.safetensors"
    weights.write_bytes(b"\0")
    weights.chmod(0o600)  # how transformers saves them
    readable_by_every_user(tmp_path)
    assert stat.S_IMODE(weights.stat().st_mode) == 0o644
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
